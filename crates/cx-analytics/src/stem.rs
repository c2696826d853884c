//! A light suffix-stripping stemmer for keyword matching.
//!
//! Porter's algorithm over-conflates for this job in some places and misses
//! in others ("delivery" and "delivered" end on different stems), and
//! keyword matching only needs inflections of one word to meet on one stem.
//! Both keywords and text go through the same function, so a stem never has
//! to be a real word; it only has to be the same for "cancel", "cancels",
//! "cancelled", "cancelling" and "cancellation", and different for "bill"
//! and "billion".
//!
//! Rules, in order, on a lowercased token (tokens of three bytes or fewer
//! are left alone):
//! 1. plural / third person: `-sses → -ss`, `-ies → -y`, `-s → ∅` (not after
//!    `s`, `u` or `i`: "address", "bus", "crisis");
//! 2. one inflection or derivation: `-ied → -y`, `-eed → -ee`, `-ed`, `-ing`
//!    (when a vowel stays and at least three letters), `-ation`;
//! 3. normalisation, so the bare word meets its inflected forms: a vowel +
//!    `ry` loses the `y` ("delivery" → "deliver"), a final `e` goes unless
//!    doubled ("charge" → "charg" like "charged"), and a final doubled
//!    consonant is undoubled ("cancell" → "cancel", "bill" → "bil").
//!
//! No `-ly` rule: it would turn "friendly" into "friend" and "billy" into a
//! bill.

/// Stem `word` (already lowercase) in place.
pub(crate) fn stem_in_place(word: &mut String) {
    if word.len() <= 3 {
        return;
    }
    strip_plural(word);
    strip_inflection(word);
    normalise(word);
}

/// Stem of one lowercase word, for tests and tooling.
#[cfg(test)]
pub(crate) fn stem(word: &str) -> String {
    let mut w = word.to_owned();
    stem_in_place(&mut w);
    w
}

fn is_vowel(b: u8) -> bool {
    matches!(b, b'a' | b'e' | b'i' | b'o' | b'u' | b'y')
}

fn replace_suffix(word: &mut String, drop: usize, add: &str) {
    word.truncate(word.len() - drop);
    word.push_str(add);
}

fn strip_plural(word: &mut String) {
    let len = word.len();
    if word.ends_with("sses") {
        word.truncate(len - 2);
    } else if word.ends_with("ies") {
        // "ties" → "tie", "deliveries" → "delivery"
        if len > 4 {
            replace_suffix(word, 3, "y");
        } else {
            word.truncate(len - 1);
        }
    } else if word.ends_with('s')
        && !word.ends_with("ss")
        && !word.ends_with("us")
        && !word.ends_with("is")
    {
        word.truncate(len - 1);
    }
}

fn strip_inflection(word: &mut String) {
    let len = word.len();
    let bytes = word.as_bytes();
    let stem_ok = |suffix: usize| {
        let stem = &bytes[..len - suffix];
        stem.len() >= 3 && stem.iter().copied().any(is_vowel)
    };
    if word.ends_with("ied") {
        if len > 4 {
            replace_suffix(word, 3, "y");
        }
    } else if word.ends_with("eed") {
        // "agreed" → "agree", but "need" and "feed" stay
        if len > 4 {
            word.truncate(len - 1);
        }
    } else if word.ends_with("ed") {
        if stem_ok(2) {
            word.truncate(len - 2);
        }
    } else if word.ends_with("ing") {
        if stem_ok(3) {
            word.truncate(len - 3);
        }
    } else if word.ends_with("ation") && len - 5 >= 3 {
        word.truncate(len - 5);
    }
}

fn normalise(word: &mut String) {
    let bytes = word.as_bytes();
    let len = bytes.len();
    if len >= 6 && bytes[len - 1] == b'y' && bytes[len - 2] == b'r' && is_vowel(bytes[len - 3]) {
        word.truncate(len - 1);
    }
    let bytes = word.as_bytes();
    let len = bytes.len();
    if len >= 4 && bytes[len - 1] == b'e' && bytes[len - 2] != b'e' {
        word.truncate(len - 1);
    }
    let bytes = word.as_bytes();
    let len = bytes.len();
    if len >= 4 {
        let last = bytes[len - 1];
        if last == bytes[len - 2] && last.is_ascii_lowercase() && !is_vowel(last) {
            word.truncate(len - 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::stem;

    fn same(words: &[&str]) {
        let first = stem(words[0]);
        for w in &words[1..] {
            assert_eq!(stem(w), first, "{w} vs {}", words[0]);
        }
    }

    fn differ(a: &str, b: &str) {
        assert_ne!(stem(a), stem(b), "{a} vs {b}");
    }

    #[test]
    fn inflections_meet() {
        same(&[
            "cancel",
            "cancels",
            "cancelled",
            "canceled",
            "canceling",
            "cancelling",
            "cancellation",
            "cancellations",
            "cancelation",
        ]);
        same(&["charge", "charged", "charges", "charging"]);
        same(&["refund", "refunded", "refunds", "refunding"]);
        same(&["bill", "bills", "billed", "billing"]);
        same(&[
            "delivery",
            "deliveries",
            "delivered",
            "delivering",
            "deliver",
            "delivers",
        ]);
        same(&["hold", "holding", "holds"]);
        same(&["wait", "waiting", "waited", "waits"]);
        same(&["transfer", "transferred", "transferring", "transfers"]);
        same(&["queue", "queued", "queuing", "queueing", "queues"]);
        same(&["crash", "crashed", "crashes", "crashing"]);
        same(&["reply", "replied", "replies", "replying"]);
        same(&["agree", "agreed", "agrees"]);
        same(&["address", "addresses"]);
        same(&["issue", "issues", "issued"]);
        same(&["damage", "damaged", "damages"]);
        same(&["stop", "stopped", "stopping", "stops"]);
        same(&["scam", "scammed", "scams"]);
    }

    #[test]
    fn different_words_stay_apart() {
        differ("bill", "billion");
        differ("bill", "billy");
        differ("cancel", "scancel");
        differ("friendly", "friend");
        differ("patient", "impatient");
        differ("app", "apply");
        differ("fee", "feed");
    }

    #[test]
    fn short_and_odd_tokens_are_safe() {
        for w in [
            "", "a", "is", "bus", "ies", "sses", "ing", "eed", "ation", "ééés", "çaed",
        ] {
            let _ = stem(w);
        }
        assert_eq!(stem("bus"), "bus");
        assert_eq!(stem("ring"), "ring");
        assert_eq!(stem("string"), "string");
        assert_eq!(stem("need"), "need");
        assert_eq!(stem("crisis"), "crisis");
    }
}
