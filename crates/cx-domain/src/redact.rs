//! PII redaction of free text: e-mail addresses, payment card numbers and phone
//! numbers are replaced by `[email]`, `[card]` and `[phone]`.
//!
//! Hand-written scanners instead of regular expressions: one pass for e-mail
//! addresses, one over the text between them for numbers, each linear in the
//! input, no dependencies, and no allocation when nothing needs replacing.
//!
//! Numbers are read as *runs*: digit groups joined by short separators
//! (`555-123-4567`, `+44 20 7946 0958`, `4111 1111 1111 1111`). A run is
//! looked at as a whole so that the middle of a longer number (a 16-digit
//! reference that fails the Luhn check, an IP address, a date) is never taken
//! for a phone number. Cards are looked for first; what is left of the run is
//! split into phone numbers where the formatting allows it. The rules err on
//! the side of redacting: hiding a reference number by mistake costs little,
//! leaking a phone number costs a lot.

use std::borrow::Cow;
use std::ops::AddAssign;

pub const EMAIL_PLACEHOLDER: &str = "[email]";
pub const PHONE_PLACEHOLDER: &str = "[phone]";
pub const CARD_PLACEHOLDER: &str = "[card]";

const CARD_MIN_DIGITS: usize = 13;
const CARD_MAX_DIGITS: usize = 19;
/// National numbers need ten digits: eight-digit references and dates must pass.
const PHONE_MIN_DIGITS: usize = 10;
/// A leading `+` says "phone number" clearly enough to accept shorter numbers.
const PHONE_MIN_DIGITS_INTERNATIONAL: usize = 8;
/// E.164 maximum.
const PHONE_MAX_DIGITS: usize = 15;
/// `+33 1 23 45 67 89` is the most fragmented common format.
const PHONE_MAX_GROUPS: usize = 6;
/// Longest separator between digit groups, e.g. `) (` is three characters.
const MAX_SEPARATOR_LEN: usize = 3;
/// Runs with fewer digits cannot hold a card or a phone number; most numbers in
/// verbatims (times, amounts, counts) stop here without further work.
const MIN_INTERESTING_DIGITS: usize = PHONE_MIN_DIGITS_INTERNATIONAL;

/// How many items of each kind were replaced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedactionCounts {
    pub emails: u32,
    pub phones: u32,
    pub cards: u32,
}

impl RedactionCounts {
    pub fn total(&self) -> u32 {
        self.emails
            .saturating_add(self.phones)
            .saturating_add(self.cards)
    }
}

impl AddAssign for RedactionCounts {
    fn add_assign(&mut self, other: Self) {
        self.emails = self.emails.saturating_add(other.emails);
        self.phones = self.phones.saturating_add(other.phones);
        self.cards = self.cards.saturating_add(other.cards);
    }
}

/// Replaces e-mail addresses, card numbers and phone numbers in `text`.
///
/// Returns the text unchanged (borrowed, no allocation) when there is nothing
/// to replace. Redacting an already redacted text changes nothing more.
pub fn redact(text: &str) -> (Cow<'_, str>, RedactionCounts) {
    // Every pattern needs an '@' or a digit; most short verbatims have neither.
    if !text.bytes().any(|b| b == b'@' || b.is_ascii_digit()) {
        return (Cow::Borrowed(text), RedactionCounts::default());
    }
    let spans = find_spans(text);
    if spans.is_empty() {
        return (Cow::Borrowed(text), RedactionCounts::default());
    }
    let mut out = String::with_capacity(text.len());
    let mut counts = RedactionCounts::default();
    let mut copied = 0;
    for span in &spans {
        out.push_str(&text[copied..span.start]);
        out.push_str(span.kind.placeholder());
        let counter = match span.kind {
            Kind::Email => &mut counts.emails,
            Kind::Phone => &mut counts.phones,
            Kind::Card => &mut counts.cards,
        };
        *counter = counter.saturating_add(1);
        copied = span.end;
    }
    out.push_str(&text[copied..]);
    (Cow::Owned(out), counts)
}

/// The Luhn (mod 10) check used by payment card numbers. `digits` are ASCII
/// digits (`b'0'..=b'9'`); anything else, or an empty slice, is not valid.
pub fn luhn_valid(digits: &[u8]) -> bool {
    if digits.is_empty() {
        return false;
    }
    let mut sum = 0u32;
    for (i, &c) in digits.iter().rev().enumerate() {
        if !c.is_ascii_digit() {
            return false;
        }
        let mut d = u32::from(c - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        // Reduced as we go so that no input length can overflow.
        sum = (sum + d) % 10;
    }
    sum == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Email,
    Phone,
    Card,
}

impl Kind {
    fn placeholder(self) -> &'static str {
        match self {
            Self::Email => EMAIL_PLACEHOLDER,
            Self::Phone => PHONE_PLACEHOLDER,
            Self::Card => CARD_PLACEHOLDER,
        }
    }
}

/// A byte range of the input to replace.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    kind: Kind,
}

/// All spans to replace, in order, not overlapping.
fn find_spans(text: &str) -> Vec<Span> {
    // E-mail addresses first: their local part may hold digits that must not be
    // read as a phone number.
    let emails = find_emails(text);
    let mut scanner = NumberScanner::new(text);
    let mut from = 0;
    for email in emails {
        scanner.scan(from, email.start);
        scanner.push(email);
        from = email.end;
    }
    scanner.scan(from, text.len());
    scanner.spans
}

/// Letters and digits of any script count, as in internationalised
/// addresses (`jöhn@exämple.de`); other non-ASCII characters (quotes,
/// dashes) end the address.
fn is_local_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '.' | '_' | '%' | '+' | '-')
        || (!c.is_ascii() && c.is_alphanumeric())
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && c.is_alphanumeric())
}

/// Scripts written without spaces between words (Han, Kana, Thai, Lao,
/// Khmer, Myanmar): in `メールはtanaka@example.comです` the address is only
/// its ASCII part, so the address ends where ASCII meets one of them.
fn is_spaceless_script(c: char) -> bool {
    matches!(u32::from(c),
        0x0E00..=0x0EFF // Thai, Lao
        | 0x1000..=0x109F // Myanmar
        | 0x1780..=0x17FF // Khmer
        | 0x3040..=0x30FF // Hiragana, Katakana
        | 0x31F0..=0x31FF
        | 0x3400..=0x4DBF // Han
        | 0x4E00..=0x9FFF
        | 0xF900..=0xFAFF
        | 0xFF66..=0xFF9F // half-width Katakana
        | 0x20000..=0x3FFFF)
}

/// Whether `c` may stand next to `neighbour` in one address part: not where
/// ASCII meets a script written without spaces.
fn joins(c: char, neighbour: char) -> bool {
    !(c.is_ascii() && is_spaceless_script(neighbour)
        || neighbour.is_ascii() && is_spaceless_script(c))
}

/// `local@domain.tld` around every '@'. Each byte is visited a bounded number
/// of times: local parts stop at the previous '@' or address, domains at the
/// next '@'.
fn find_emails(text: &str) -> Vec<Span> {
    let b = text.as_bytes();
    let mut spans = Vec::new();
    let mut floor = 0;
    for at in (0..b.len()).filter(|&i| b[i] == b'@') {
        if at < floor {
            continue;
        }
        let mut start = at;
        let mut next: Option<char> = None;
        for (i, c) in text[floor..at].char_indices().rev() {
            if !is_local_char(c) || next.is_some_and(|n| !joins(c, n)) {
                break;
            }
            start = floor + i;
            next = Some(c);
        }
        // A dot before the address ends a sentence; it is not part of it.
        while start < at && b[start] == b'.' {
            start += 1;
        }
        if start == at {
            continue;
        }
        if let Some(end) = domain_end(text, at + 1) {
            spans.push(Span {
                start,
                end,
                kind: Kind::Email,
            });
            floor = end;
        }
    }
    spans
}

/// End of `label(.label)+` starting at `from`, where the last label kept is a
/// TLD of at least two letters. Trailing labels that cannot be a TLD (and a
/// sentence's full stop) are left out.
fn domain_end(text: &str, from: usize) -> Option<usize> {
    let mut i = from;
    let mut labels = 0;
    let mut end = None;
    loop {
        let label_start = i;
        let mut previous: Option<char> = None;
        i += text[i..]
            .chars()
            .take_while(|&c| {
                let taken = is_label_char(c) && previous.is_none_or(|p| joins(c, p));
                previous = Some(c);
                taken
            })
            .map(char::len_utf8)
            .sum::<usize>();
        if i == label_start {
            break;
        }
        labels += 1;
        let label = &text[label_start..i];
        if labels >= 2 && label.chars().nth(1).is_some() && label.chars().all(char::is_alphabetic) {
            end = Some(i);
        }
        let after_dot = text[i..].strip_prefix('.');
        if after_dot.is_some_and(|rest| rest.chars().next().is_some_and(is_label_char)) {
            i += 1;
        } else {
            break;
        }
    }
    end
}

/// Characters that may join digit groups inside a run.
fn is_separator_char(c: u8) -> bool {
    matches!(c, b' ' | b'-' | b'.' | b'(' | b')' | b'+')
}

/// Characters that may open a run before its first digit.
fn is_prefix_char(c: u8) -> bool {
    matches!(c, b'+' | b'(')
}

/// A space separates "words" of a number (`020 7946 0958`), other separators
/// join parts of one word (`555-123-4567`). A '+' glued to the digits before
/// it (`…4567+44…`) does not start a new word: neither side can be told apart.
fn is_chunk_break(sep: &[u8]) -> bool {
    sep.contains(&b' ')
}

/// Digits `start..end`, preceded by the separator `sep_start..start` (for the
/// first group of a run: its prefix, possibly empty).
#[derive(Debug, Clone, Copy)]
struct Group {
    sep_start: usize,
    start: usize,
    end: usize,
}

impl Group {
    fn len(&self) -> usize {
        self.end - self.start
    }
}

/// Groups `first..=last` not split by a space: one "word" of a number.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    first: usize,
    last: usize,
    /// Formatted with inner separators or long on its own: a number in its own
    /// right, so the space next to it may separate two numbers.
    self_contained: bool,
    /// Reads as a date, a year range, an IP address or a decimal amount.
    excluded: bool,
}

/// A phone number candidate: byte range and digit count.
#[derive(Debug, Clone, Copy)]
struct Piece {
    start: usize,
    end: usize,
    digits: usize,
}

/// Finds cards and phone numbers; its buffers are reused from run to run.
struct NumberScanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    spans: Vec<Span>,
    /// End of the scanned region: the next e-mail address or the end of text.
    limit: usize,
    /// End of the last span found, which counts as a boundary: after
    /// redaction it is a ']'.
    last_span_end: Option<usize>,
    groups: Vec<Group>,
    chunks: Vec<Chunk>,
    /// Per chunk: best (phone count, digits covered) from here to the end.
    best: Vec<(usize, usize)>,
    /// Per chunk: last chunk of the phone number starting here, if any.
    choice: Vec<Option<usize>>,
}

impl<'a> NumberScanner<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            bytes: text.as_bytes(),
            spans: Vec::new(),
            limit: 0,
            last_span_end: None,
            groups: Vec::new(),
            chunks: Vec::new(),
            best: Vec::new(),
            choice: Vec::new(),
        }
    }

    fn push(&mut self, span: Span) {
        self.last_span_end = Some(span.end);
        self.spans.push(span);
    }

    /// Letter or digit right before `pos` (spans already found do not count).
    fn word_before(&self, pos: usize) -> bool {
        self.last_span_end != Some(pos)
            && self.text[..pos]
                .chars()
                .next_back()
                .is_some_and(char::is_alphanumeric)
    }

    /// Letter or digit at `pos` within the scanned region.
    fn word_after(&self, pos: usize) -> bool {
        pos < self.limit
            && self.text[pos..]
                .chars()
                .next()
                .is_some_and(char::is_alphanumeric)
    }

    /// `#123…`, `$1234…`: an order number or an amount, not a phone number.
    fn reference_marker_before(&self, pos: usize) -> bool {
        self.last_span_end != Some(pos)
            && self.text[..pos]
                .chars()
                .next_back()
                .is_some_and(|c| matches!(c, '#' | '$' | '€' | '£' | '¥'))
    }

    fn sep(&self, group: usize) -> &'a [u8] {
        let g = self.groups[group];
        &self.bytes[g.sep_start..g.start]
    }

    /// Scans `from..to` for numbers. Each run is parsed once and skipped as a
    /// whole, so the scan is linear and never starts inside a longer number.
    fn scan(&mut self, from: usize, to: usize) {
        self.limit = to;
        let b = self.bytes;
        let mut i = from;
        while i < to {
            let c = b[i];
            if !(c.is_ascii_digit() || is_prefix_char(c)) {
                i += 1;
                continue;
            }
            let Some((end, digits)) = self.parse_run(i) else {
                i += 1;
                continue;
            };
            // A '+' says "phone number" even glued to a word (`tel+44…`).
            if digits >= MIN_INTERESTING_DIGITS && (c == b'+' || !self.word_before(i)) {
                self.analyse_run();
            }
            i = end;
        }
    }

    /// Reads the run starting at `p` into `self.groups`; returns its end and
    /// digit count, or `None` if no digit follows the prefix.
    fn parse_run(&mut self, p: usize) -> Option<(usize, usize)> {
        let b = self.bytes;
        let to = self.limit;
        self.groups.clear();
        let mut digits = 0;
        let mut i = p;
        loop {
            let allowed: fn(u8) -> bool = if self.groups.is_empty() {
                is_prefix_char
            } else {
                is_separator_char
            };
            let mut j = i;
            while j < to && j - i < MAX_SEPARATOR_LEN && allowed(b[j]) {
                j += 1;
            }
            if j >= to || !b[j].is_ascii_digit() {
                break;
            }
            let start = j;
            while j < to && b[j].is_ascii_digit() {
                j += 1;
            }
            digits += j - start;
            self.groups.push(Group {
                sep_start: i,
                start,
                end: j,
            });
            i = j;
        }
        self.groups.last().map(|g| (g.end, digits))
    }

    /// Cards first (they are checked by Luhn, so they are certain), then phone
    /// numbers in the parts of the run between cards.
    fn analyse_run(&mut self) {
        let n = self.groups.len();
        let mut segment_start = 0;
        let mut g = 0;
        while g < n {
            match self.card_from(g) {
                Some(last) => {
                    self.phones_in(segment_start, g);
                    self.push(Span {
                        start: self.groups[g].start,
                        end: self.groups[last].end,
                        kind: Kind::Card,
                    });
                    g = last + 1;
                    segment_start = g;
                }
                None => g += 1,
            }
        }
        self.phones_in(segment_start, n);
    }

    /// The last group of the longest card number starting at group `g`: 13–19
    /// digits, groups joined by one space or one dash (the same throughout),
    /// passing Luhn, not followed by a letter or digit, not after a '+'.
    fn card_from(&self, g: usize) -> Option<usize> {
        // Nobody writes a card number after a '+'; that is a phone number whose
        // digits happen to pass Luhn.
        if self.groups[g].start > 0 && self.bytes[self.groups[g].start - 1] == b'+' {
            return None;
        }
        let mut digits = [0u8; CARD_MAX_DIGITS];
        let mut len = 0;
        let mut joiner = None;
        let mut best = None;
        for k in g..self.groups.len() {
            if k > g {
                let &[c] = self.sep(k) else { break };
                if !matches!(c, b' ' | b'-') || joiner.is_some_and(|j| j != c) {
                    break;
                }
                joiner = Some(c);
            }
            let group = self.groups[k];
            let part = &self.bytes[group.start..group.end];
            if len + part.len() > CARD_MAX_DIGITS {
                break;
            }
            digits[len..len + part.len()].copy_from_slice(part);
            len += part.len();
            if len >= CARD_MIN_DIGITS && luhn_valid(&digits[..len]) && !self.word_after(group.end) {
                best = Some(k);
            }
        }
        best
    }

    /// Finds phone numbers among groups `a..b`: splits them into chunks, then
    /// picks by dynamic programming the split into phone numbers with the most
    /// numbers (then the most digits), breaking only where the formatting
    /// shows two numbers meet.
    fn phones_in(&mut self, a: usize, b: usize) {
        if a >= b {
            return;
        }
        self.chunks.clear();
        let mut k = a;
        while k < b {
            let first = k;
            while k + 1 < b && !is_chunk_break(self.sep(k + 1)) {
                k += 1;
            }
            let chunk = self.chunk(first, k);
            self.chunks.push(chunk);
            k += 1;
        }
        let m = self.chunks.len();
        self.best.clear();
        self.best.resize(m + 1, (0, 0));
        self.choice.clear();
        self.choice.resize(m + 1, None);
        for c in (0..m).rev() {
            let mut best = self.best[c + 1];
            let mut choice = None;
            if c == 0 || self.break_allowed(c) {
                for d in c..m {
                    if self.chunks[d].last - self.chunks[c].first + 1 > PHONE_MAX_GROUPS {
                        break;
                    }
                    if d + 1 < m && !self.break_allowed(d + 1) {
                        continue;
                    }
                    if let Some(piece) = self.phone(c, d) {
                        let rest = self.best[d + 1];
                        let candidate = (rest.0 + 1, rest.1 + piece.digits);
                        if candidate > best {
                            best = candidate;
                            choice = Some(d);
                        }
                    }
                }
            }
            self.best[c] = best;
            self.choice[c] = choice;
        }
        let mut c = 0;
        while c < m {
            match self.choice[c] {
                Some(d) => {
                    if let Some(piece) = self.phone(c, d) {
                        self.push(Span {
                            start: piece.start,
                            end: piece.end,
                            kind: Kind::Phone,
                        });
                    }
                    c = d + 1;
                }
                None => c += 1,
            }
        }
    }

    fn chunk(&self, first: usize, last: usize) -> Chunk {
        let digits: usize = self.groups[first..=last].iter().map(Group::len).sum();
        Chunk {
            first,
            last,
            self_contained: last > first || digits >= MIN_INTERESTING_DIGITS,
            excluded: self.looks_like_other_number(first, last),
        }
    }

    /// Dates (`2026-11-22`, `22.11.2026`), year ranges (`2019-2024`), IPv4
    /// addresses and decimal amounts (`12345678.90`), which can have as many
    /// digits as a phone number once a neighbouring number is added.
    fn looks_like_other_number(&self, first: usize, last: usize) -> bool {
        let n = last - first + 1;
        if !(2..=4).contains(&n) {
            return false;
        }
        let &[joiner] = self.sep(first + 1) else {
            return false;
        };
        if !(first + 2..=last).all(|k| self.sep(k) == [joiner]) {
            return false;
        }
        let len = |i: usize| self.groups[first + i].len();
        let is_year = |i: usize| {
            let g = self.groups[first + i];
            g.len() == 4 && matches!(&self.bytes[g.start..g.start + 2], b"19" | b"20")
        };
        match (n, joiner) {
            (2, b'.') => true,
            (2, b'-') => is_year(0) && is_year(1),
            (3, b'-' | b'.') => {
                (len(0) == 4 && len(1) <= 2 && len(2) <= 2)
                    || (len(0) <= 2 && len(1) <= 2 && len(2) == 4)
            }
            (4, b'.') => (0..4).all(|i| len(i) <= 3),
            _ => false,
        }
    }

    /// May two numbers meet between chunk `c - 1` and chunk `c`? Only next to
    /// a chunk that is a number on its own, or before a new `+` / `(`; a plain
    /// space between bare digit groups (`1234 5678 9012 3456`) joins them.
    fn break_allowed(&self, c: usize) -> bool {
        let (left, right) = (self.chunks[c - 1], self.chunks[c]);
        left.self_contained
            || right.self_contained
            || self.sep(right.first).iter().any(|&ch| is_prefix_char(ch))
    }

    /// Chunks `c..=d` as one phone number, if they make one.
    fn phone(&self, c: usize, d: usize) -> Option<Piece> {
        if self.chunks[c..=d].iter().any(|chunk| chunk.excluded) {
            return None;
        }
        let (first, last) = (self.chunks[c].first, self.chunks[d].last);
        let mut digits = 0;
        let mut has_close = false;
        for k in first..=last {
            digits += self.groups[k].len();
            if k > first {
                let sep = self.sep(k);
                // A '+' starts another number; ". " ends a sentence.
                if sep.contains(&b'+') || (sep.contains(&b'.') && sep.contains(&b' ')) {
                    return None;
                }
                has_close |= sep.contains(&b')');
            }
        }
        // A leading '(' belongs to the number only if it is closed inside it.
        let lead = self.sep(first);
        let prefix_len = lead
            .iter()
            .rev()
            .take_while(|&&ch| ch == b'+' || (has_close && ch == b'('))
            .count();
        let international = lead[lead.len() - prefix_len..].contains(&b'+');
        let min = if international {
            PHONE_MIN_DIGITS_INTERNATIONAL
        } else {
            PHONE_MIN_DIGITS
        };
        if !(min..=PHONE_MAX_DIGITS).contains(&digits) {
            return None;
        }
        let start = self.groups[first].start - prefix_len;
        let end = self.groups[last].end;
        if (!international && self.word_before(start))
            || self.reference_marker_before(start)
            || self.word_after(end)
        {
            return None;
        }
        Some(Piece { start, end, digits })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn redacted(text: &str) -> String {
        redact(text).0.into_owned()
    }

    #[test]
    fn leaves_numbers_that_are_not_pii_alone() {
        for text in [
            "2026-11-22",
            "10:30",
            "$1,234.56",
            "1234.56",
            "I called 3 times",
            "order #123456",
            "ticket 98765",
            "12345678",
            "1234 5678 9012 3456",
            "v2.3.14",
            "10.0.0.1",
            "2019-2024",
            "ping @support about it",
            "thanks @support!",
            // Combinations that reach phone-number length.
            "on 2026-11-22 10:30 I called",
            "on 2026-11-22 10 people called",
            "server 192.168.100.200 was down",
            "refund of 12345678.90 pending",
            "from 2019-2024 12 times",
            "order #5551234567",
            "paid $5551234567",
            "1234-5678-9012-3456",
            "4111 1111 1111 1112",
            "abc5551234567",
            "5551234567abc",
            "a 20-digit number 12345678901234567890",
        ] {
            let (out, counts) = redact(text);
            assert!(matches!(out, Cow::Borrowed(_)), "{text:?} became {out:?}");
            assert_eq!(counts, RedactionCounts::default(), "{text:?}");
        }
    }

    #[test]
    fn redacts_emails() {
        for text in [
            "john.doe@example.com",
            "a+b@mail.co.uk",
            "X_Y%z-1@sub-domain.example.org",
        ] {
            assert_eq!(redacted(text), "[email]", "{text:?}");
        }
        assert_eq!(
            redacted("write to john.doe@example.com."),
            "write to [email]."
        );
        assert_eq!(redacted("(a@b.io)"), "([email])");
        assert_eq!(redacted("a@b.io, c@d.io"), "[email], [email]");
        // Internationalised addresses; quotes around them are not part of them.
        assert_eq!(redacted("jöhn@exämple.de"), "[email]");
        assert_eq!(redacted("почта: иван@пример.рф!"), "почта: [email]!");
        assert_eq!(redacted("“ana@example.com”"), "“[email]”");
        // Scripts without spaces between words keep the text around.
        assert_eq!(
            redacted("メールはtanaka@example.comです"),
            "メールは[email]です"
        );
        assert_eq!(
            redacted("我的邮箱是zhang@163.com谢谢"),
            "我的邮箱是[email]谢谢"
        );
        assert_eq!(redacted("田中@例え.jp"), "[email]");
        // No TLD of two letters: not an address.
        for text in ["user@localhost", "a@b.c", "a@1.23", "@@", "a@", "@b.com"] {
            assert_eq!(redacted(text), text, "{text:?}");
        }
    }

    #[test]
    fn redacts_cards() {
        for text in [
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "4111111111111111",
            "378282246310005",
            "3782 822463 10005",
            "5555555555554444",
        ] {
            let (out, counts) = redact(text);
            assert_eq!(out, "[card]", "{text:?}");
            assert_eq!(counts.cards, 1, "{text:?}");
        }
        assert_eq!(
            redacted("card 4111 1111 1111 1111 exp 12/26"),
            "card [card] exp 12/26"
        );
        // A card glued to a letter or mixing separators is left alone.
        assert_eq!(redacted("x4111111111111111"), "x4111111111111111");
        assert_eq!(redacted("4111111111111111x"), "4111111111111111x");
    }

    #[test]
    fn redacts_phones() {
        for text in [
            "+44 20 7946 0958",
            "+1 (555) 123-4567",
            "(555) 123-4567",
            "555-123-4567",
            "555.123.4567",
            "020 7946 0958",
            "07700 900123",
            "07700900123",
            "+33 1 23 45 67 89",
            "+4915112345678",
        ] {
            let (out, counts) = redact(text);
            assert_eq!(out, "[phone]", "{text:?}");
            assert_eq!(counts.phones, 1, "{text:?}");
        }
        // A '+' says "phone number" even glued to a word; without one, a
        // number glued to a word stays (a reference, a model number).
        assert_eq!(redacted("phone+4915123456789"), "phone[phone]");
        assert_eq!(redacted("ref5551234567"), "ref5551234567");
    }

    #[test]
    fn surrounding_text_survives() {
        let cases = [
            (
                "call me at 555-123-4567 please",
                "call me at [phone] please",
            ),
            ("Call (555) 123-4567.", "Call [phone]."),
            ("(call 555-123-4567)", "(call [phone])"),
            ("tel:+44 20 7946 0958;", "tel:[phone];"),
            ("555-123-4567 555-987-6543", "[phone] [phone]"),
            ("(555) 123-4567 (555) 987-6543", "[phone] [phone]"),
            ("on 2026-11-22 555 123 4567", "on 2026-11-22 [phone]"),
            ("ref 12345678 5551234567", "ref 12345678 [phone]"),
            ("at 10:30 call 555-123-4567", "at 10:30 call [phone]"),
            ("Order 12345. 5551234567", "Order 12345. [phone]"),
            ("4111111111111111 5551234567", "[card] [phone]"),
            (
                "mail a@b.com or ring 07700 900123, card 4111-1111-1111-1111!",
                "mail [email] or ring [phone], card [card]!",
            ),
            ("é 555-123-4567 ü", "é [phone] ü"),
        ];
        for (text, want) in cases {
            assert_eq!(redacted(text), want, "{text:?}");
        }
    }

    #[test]
    fn counts_every_kind() {
        let (out, counts) = redact("a@b.co c@d.co 555-123-4567 4111111111111111");
        assert_eq!(out, "[email] [email] [phone] [card]");
        assert_eq!(
            counts,
            RedactionCounts {
                emails: 2,
                phones: 1,
                cards: 1
            }
        );
        assert_eq!(counts.total(), 4);
        let mut sum = counts;
        sum += counts;
        assert_eq!(sum.total(), 8);
    }

    #[test]
    fn email_local_part_digits_are_not_a_phone() {
        assert_eq!(redacted("5551234567@example.com"), "[email]");
        // The '+' after the address opens an international number.
        assert_eq!(redacted("a@b.com+5551234567"), "[email][phone]");
    }

    #[test]
    fn a_plus_glued_between_numbers_joins_them() {
        // Found by the idempotence property: redacting only the left number
        // would expose the right one to the second pass.
        let text = "0000000000+0000000000";
        assert_eq!(redacted(text), text);
    }

    #[test]
    fn adversarial_inputs_stay_linear() {
        // Each would take seconds if a scanner restarted inside long runs.
        for unit in [
            "1 ",
            "1-",
            "12 ",
            "+1 ",
            "(1) ",
            "a@",
            "a.",
            "@a.",
            "a@b.",
            "555-123-4567 ",
        ] {
            let text = unit.repeat(200_000 / unit.len());
            let started = std::time::Instant::now();
            let once = redacted(&text);
            assert_eq!(redacted(&once), once, "{unit:?}");
            assert!(
                started.elapsed().as_secs() < 5,
                "{unit:?} took {:?}",
                started.elapsed()
            );
        }
    }

    #[test]
    fn luhn_known_values() {
        assert!(luhn_valid(b"4111111111111111"));
        assert!(luhn_valid(b"378282246310005"));
        assert!(luhn_valid(b"79927398713"));
        assert!(!luhn_valid(b"79927398710"));
        assert!(!luhn_valid(b"1234567890123456"));
        assert!(!luhn_valid(b""));
        assert!(!luhn_valid(b"4111-1111"));
    }

    fn check_digit(payload: &[u8]) -> u8 {
        (b'0'..=b'9')
            .find(|&d| {
                let mut full = payload.to_vec();
                full.push(d);
                luhn_valid(&full)
            })
            .unwrap()
    }

    fn pii_prone_text() -> impl Strategy<Value = String> {
        let alphabet: Vec<char> = "aZ09 5418@.+-()#$:/,_é\n".chars().collect();
        prop::collection::vec(prop::sample::select(alphabet), 0..60)
            .prop_map(|chars| chars.into_iter().collect())
    }

    /// Mostly digits and separators: long runs that exercise the phone split.
    fn number_heavy_text() -> impl Strategy<Value = String> {
        let alphabet: Vec<char> = "0123456789      ---..()+a@".chars().collect();
        prop::collection::vec(prop::sample::select(alphabet), 0..80)
            .prop_map(|chars| chars.into_iter().collect())
    }

    proptest! {
        #[test]
        fn text_without_digits_or_at_is_borrowed(text in "[^0-9@]{0,200}") {
            let (out, counts) = redact(&text);
            prop_assert!(matches!(out, Cow::Borrowed(_)));
            prop_assert_eq!(out, text.as_str());
            prop_assert_eq!(counts.total(), 0);
        }

        #[test]
        fn redaction_is_idempotent(text in pii_prone_text()) {
            let once = redacted(&text);
            let (twice, counts) = redact(&once);
            prop_assert_eq!(&twice, &once);
            prop_assert_eq!(counts.total(), 0);
        }

        #[test]
        fn redaction_of_number_runs_is_idempotent(text in number_heavy_text()) {
            let once = redacted(&text);
            prop_assert_eq!(redacted(&once), once);
        }

        #[test]
        fn redaction_is_idempotent_on_any_text(text in any::<String>()) {
            let once = redacted(&text);
            prop_assert_eq!(redacted(&once), once);
        }

        #[test]
        fn a_correct_check_digit_makes_luhn_pass(payload in prop::collection::vec(b'0'..=b'9', 1..25)) {
            let mut full = payload.clone();
            full.push(check_digit(&payload));
            prop_assert!(luhn_valid(&full));
            // Any single wrong digit is caught.
            let last = full.len() - 1;
            full[last] = b'0' + (full[last] - b'0' + 1) % 10;
            prop_assert!(!luhn_valid(&full));
        }

        #[test]
        fn generated_card_numbers_are_redacted(payload in prop::collection::vec(b'0'..=b'9', 12..19)) {
            let mut digits = payload.clone();
            digits.push(check_digit(&payload));
            let number = String::from_utf8(digits).unwrap();
            let text = format!("card: {number} thanks");
            let (out, counts) = redact(&text);
            prop_assert_eq!(out, "card: [card] thanks");
            prop_assert_eq!(counts.cards, 1);
        }
    }
}
