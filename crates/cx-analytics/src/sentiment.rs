//! Sentiment of a verbatim: a port of VADER (Hutto & Gilbert, 2014).
//!
//! The reference is the Python package `vaderSentiment` 3.3.2 (MIT licence,
//! text in `data/LICENSE-vader.txt`); its lexicons ship unmodified in
//! `data/`. The port follows the reference rule for rule, quirks included
//! (the "but" rescaling that looks values up by equality, the "this"/"so"
//! emphasis three words back, the dampener bigrams that add a negative
//! scalar whatever the sign), because the point of the port is that a score
//! computed here equals the score an analyst gets from the Python tool.
//! `tests/vader_agreement.rs` holds it to that against recorded reference
//! output.
//!
//! Only the compound score is computed; the pos/neu/neg proportions are not
//! part of the contract.
//!
//! Hot-path notes: tokens are lowercased into a thread-local buffer that is
//! reused between calls, and each token costs one hash lookup in a merged
//! table (lexicon valence, booster scalar and negation flag together), so a
//! typical verbatim is scored without touching the allocator.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use foldhash::fast::RandomState;
use serde::{Deserialize, Serialize};

/// A compound score at or above this is positive (cxloop contract).
pub const POSITIVE_THRESHOLD: f64 = 0.05;
/// A compound score at or below this is negative (cxloop contract).
pub const NEGATIVE_THRESHOLD: f64 = -0.05;

const LEXICON_TXT: &str = include_str!("../data/vader_lexicon.txt");
const EMOJI_TXT: &str = include_str!("../data/emoji_utf8_lexicon.txt");

// Empirically derived constants of the reference implementation.
const B_INCR: f64 = 0.293;
const B_DECR: f64 = -0.293;
const C_INCR: f64 = 0.733;
const N_SCALAR: f64 = -0.74;
const ALPHA: f64 = 15.0;

const NEGATE: &[&str] = &[
    "aint",
    "arent",
    "cannot",
    "cant",
    "couldnt",
    "darent",
    "didnt",
    "doesnt",
    "ain't",
    "aren't",
    "can't",
    "couldn't",
    "daren't",
    "didn't",
    "doesn't",
    "dont",
    "hadnt",
    "hasnt",
    "havent",
    "isnt",
    "mightnt",
    "mustnt",
    "neither",
    "don't",
    "hadn't",
    "hasn't",
    "haven't",
    "isn't",
    "mightn't",
    "mustn't",
    "neednt",
    "needn't",
    "never",
    "none",
    "nope",
    "nor",
    "not",
    "nothing",
    "nowhere",
    "oughtnt",
    "shant",
    "shouldnt",
    "uhuh",
    "wasnt",
    "werent",
    "oughtn't",
    "shan't",
    "shouldn't",
    "uh-uh",
    "wasn't",
    "weren't",
    "without",
    "wont",
    "wouldnt",
    "won't",
    "wouldn't",
    "rarely",
    "seldom",
    "despite",
];

// Single-token boosters and dampeners. The reference's two-word entries
// ("kind of", "sort of", "just enough") can never equal one token, so they
// only act through `BOOSTER_BIGRAMS` in the idiom check.
const BOOSTERS: &[(&str, f64)] = &[
    ("absolutely", B_INCR),
    ("amazingly", B_INCR),
    ("awfully", B_INCR),
    ("completely", B_INCR),
    ("considerable", B_INCR),
    ("considerably", B_INCR),
    ("decidedly", B_INCR),
    ("deeply", B_INCR),
    ("effing", B_INCR),
    ("enormous", B_INCR),
    ("enormously", B_INCR),
    ("entirely", B_INCR),
    ("especially", B_INCR),
    ("exceptional", B_INCR),
    ("exceptionally", B_INCR),
    ("extreme", B_INCR),
    ("extremely", B_INCR),
    ("fabulously", B_INCR),
    ("flipping", B_INCR),
    ("flippin", B_INCR),
    ("frackin", B_INCR),
    ("fracking", B_INCR),
    ("fricking", B_INCR),
    ("frickin", B_INCR),
    ("frigging", B_INCR),
    ("friggin", B_INCR),
    ("fully", B_INCR),
    ("fuckin", B_INCR),
    ("fucking", B_INCR),
    ("fuggin", B_INCR),
    ("fugging", B_INCR),
    ("greatly", B_INCR),
    ("hella", B_INCR),
    ("highly", B_INCR),
    ("hugely", B_INCR),
    ("incredible", B_INCR),
    ("incredibly", B_INCR),
    ("intensely", B_INCR),
    ("major", B_INCR),
    ("majorly", B_INCR),
    ("more", B_INCR),
    ("most", B_INCR),
    ("particularly", B_INCR),
    ("purely", B_INCR),
    ("quite", B_INCR),
    ("really", B_INCR),
    ("remarkably", B_INCR),
    ("so", B_INCR),
    ("substantially", B_INCR),
    ("thoroughly", B_INCR),
    ("total", B_INCR),
    ("totally", B_INCR),
    ("tremendous", B_INCR),
    ("tremendously", B_INCR),
    ("uber", B_INCR),
    ("unbelievably", B_INCR),
    ("unusually", B_INCR),
    ("utter", B_INCR),
    ("utterly", B_INCR),
    ("very", B_INCR),
    ("almost", B_DECR),
    ("barely", B_DECR),
    ("hardly", B_DECR),
    ("kinda", B_DECR),
    ("kindof", B_DECR),
    ("kind-of", B_DECR),
    ("less", B_DECR),
    ("little", B_DECR),
    ("marginal", B_DECR),
    ("marginally", B_DECR),
    ("occasional", B_DECR),
    ("occasionally", B_DECR),
    ("partly", B_DECR),
    ("scarce", B_DECR),
    ("scarcely", B_DECR),
    ("slight", B_DECR),
    ("slightly", B_DECR),
    ("somewhat", B_DECR),
    ("sorta", B_DECR),
    ("sortof", B_DECR),
    ("sort-of", B_DECR),
];

const BOOSTER_BIGRAMS: &[([&str; 2], f64)] = &[
    (["just", "enough"], B_DECR),
    (["kind", "of"], B_DECR),
    (["sort", "of"], B_DECR),
];

// The reference's SPECIAL_CASES, less "badass": a one-word key never equals
// the space-joined n-grams it is compared with.
const SPECIAL_BIGRAMS: &[([&str; 2], f64)] = &[
    (["the", "shit"], 3.0),
    (["the", "bomb"], 3.0),
    (["bad", "ass"], 1.5),
    (["bus", "stop"], 0.0),
    (["yeah", "right"], -2.0),
    (["beating", "heart"], 3.5),
];
const SPECIAL_TRIGRAMS: &[([&str; 3], f64)] =
    &[(["kiss", "of", "death"], -1.5), (["to", "die", "for"], 3.0)];

/// What the scorer knows about one lowercased token.
#[derive(Clone, Copy, Default)]
struct WordInfo {
    /// Lexicon valence, if the word is in the lexicon.
    valence: Option<f64>,
    /// Booster/dampener scalar; 0 when the word is not one (none is 0).
    booster: f64,
    /// In the reference's NEGATE list.
    negation: bool,
}

struct Lexicon {
    words: HashMap<&'static str, WordInfo, RandomState>,
    /// Emoji with a one-code-point key; the reference walks the text one
    /// code point at a time, so longer keys can never match.
    emoji: HashMap<char, &'static str, RandomState>,
}

impl Lexicon {
    fn get() -> &'static Lexicon {
        static LEXICON: OnceLock<Lexicon> = OnceLock::new();
        LEXICON.get_or_init(Lexicon::build)
    }

    fn build() -> Lexicon {
        let mut words: HashMap<&'static str, WordInfo, RandomState> =
            HashMap::with_capacity_and_hasher(7_600, RandomState::default());
        for line in LEXICON_TXT.lines() {
            let line = line.trim();
            let mut cols = line.split('\t');
            let (Some(word), Some(measure)) = (cols.next(), cols.next()) else {
                continue;
            };
            // The shipped file is fixed and parsed by a test, so a bad
            // number cannot reach production; skip rather than panic anyway.
            let Ok(valence) = measure.parse::<f64>() else {
                continue;
            };
            // Later duplicates win, as in the reference's dict.
            words.entry(word).or_default().valence = Some(valence);
        }
        for &(word, scalar) in BOOSTERS {
            words.entry(word).or_default().booster = scalar;
        }
        for &word in NEGATE {
            words.entry(word).or_default().negation = true;
        }
        let mut emoji = HashMap::with_capacity_and_hasher(1_300, RandomState::default());
        for line in EMOJI_TXT.lines() {
            let mut cols = line.trim().split('\t');
            let (Some(key), Some(description)) = (cols.next(), cols.next()) else {
                continue;
            };
            let mut chars = key.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                emoji.insert(c, description);
            }
        }
        Lexicon { words, emoji }
    }
}

/// Positive, neutral or negative, by the contract's thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SentimentLabel {
    Negative,
    Neutral,
    Positive,
}

impl SentimentLabel {
    pub fn as_str(self) -> &'static str {
        match self {
            SentimentLabel::Negative => "negative",
            SentimentLabel::Neutral => "neutral",
            SentimentLabel::Positive => "positive",
        }
    }
}

impl fmt::Display for SentimentLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Label a compound score: negative ≤ −0.05, positive ≥ 0.05, else neutral
/// (NaN included).
pub fn label(compound: f64) -> SentimentLabel {
    if compound >= POSITIVE_THRESHOLD {
        SentimentLabel::Positive
    } else if compound <= NEGATIVE_THRESHOLD {
        SentimentLabel::Negative
    } else {
        SentimentLabel::Neutral
    }
}

/// VADER compound scorer. Cheap to create and to clone: the lexicon is
/// parsed once per process and shared.
#[derive(Clone, Copy)]
pub struct SentimentScorer {
    lex: &'static Lexicon,
}

impl fmt::Debug for SentimentScorer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentimentScorer")
            .field("lexicon_words", &self.lex.words.len())
            .field("emoji", &self.lex.emoji.len())
            .finish()
    }
}

impl Default for SentimentScorer {
    fn default() -> Self {
        Self::new()
    }
}

/// One token after punctuation stripping.
#[derive(Clone, Copy)]
struct Token {
    /// Byte range of the lowercased form in `Scratch::lower`.
    lo: usize,
    hi: usize,
    /// Python's `str.isupper()` of the token as written.
    upper: bool,
    info: WordInfo,
}

/// Per-thread buffers reused between calls.
struct Scratch {
    lower: String,
    tokens: Vec<Token>,
    sentiments: Vec<f64>,
    emoji_text: String,
}

impl Scratch {
    const fn new() -> Self {
        Scratch {
            lower: String::new(),
            tokens: Vec::new(),
            sentiments: Vec::new(),
            emoji_text: String::new(),
        }
    }

    /// Drop buffers that one huge text blew up, so a thread does not keep
    /// them for its whole life.
    fn trim(&mut self) {
        const MAX_BYTES: usize = 64 * 1024;
        const MAX_TOKENS: usize = 4 * 1024;
        if self.lower.capacity() > MAX_BYTES || self.emoji_text.capacity() > MAX_BYTES {
            self.lower = String::new();
            self.emoji_text = String::new();
        }
        if self.tokens.capacity() > MAX_TOKENS {
            self.tokens = Vec::new();
            self.sentiments = Vec::new();
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const { RefCell::new(Scratch::new()) };
}

impl SentimentScorer {
    pub fn new() -> Self {
        SentimentScorer {
            lex: Lexicon::get(),
        }
    }

    /// VADER compound score of `text`, in −1…1 (0 for text without words).
    /// Not rounded; the reference rounds to 4 decimals when it reports.
    pub fn compound(&self, text: &str) -> f64 {
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => {
                let score = self.score(text, &mut scratch);
                scratch.trim();
                score
            }
            // Only reachable through re-entrancy, which nothing here does;
            // stay correct rather than panic.
            Err(_) => self.score(text, &mut Scratch::new()),
        })
    }

    fn score(&self, text: &str, scratch: &mut Scratch) -> f64 {
        let Scratch {
            lower,
            tokens,
            sentiments,
            emoji_text,
        } = scratch;
        let text = self.replace_emoji(text, emoji_text);
        self.tokenize(text, lower, tokens);
        if tokens.is_empty() {
            return 0.0;
        }
        let words = Words {
            lower: lower.as_str(),
            tokens: tokens.as_slice(),
        };
        let cap_diff = allcap_differential(tokens);

        sentiments.clear();
        for (i, token) in tokens.iter().enumerate() {
            // Modifiers carry no valence of their own.
            if token.info.booster != 0.0
                || (i + 1 < words.len() && words.at(i) == "kind" && words.at(i + 1) == "of")
            {
                sentiments.push(0.0);
                continue;
            }
            sentiments.push(match token.info.valence {
                Some(base) => sentiment_valence(&words, i, base, cap_diff),
                None => 0.0,
            });
        }

        but_check(&words, sentiments);

        // Summed left to right like Python 3.11's sum() over floats.
        let mut sum = 0.0_f64;
        for &s in sentiments.iter() {
            sum += s;
        }
        let amplifier = punctuation_emphasis(text);
        if sum > 0.0 {
            sum += amplifier;
        } else if sum < 0.0 {
            sum -= amplifier;
        }
        normalize(sum)
    }

    /// The reference replaces each emoji code point with its description,
    /// adding a space before it when the previous character was not one.
    fn replace_emoji<'t>(&self, text: &'t str, buf: &'t mut String) -> &'t str {
        if text.is_ascii() {
            return text;
        }
        let emoji = &self.lex.emoji;
        if !text
            .chars()
            .any(|c| !c.is_ascii() && emoji.contains_key(&c))
        {
            return text;
        }
        buf.clear();
        let mut prev_space = true;
        for c in text.chars() {
            match emoji.get(&c) {
                Some(description) => {
                    if !prev_space {
                        buf.push(' ');
                    }
                    buf.push_str(description);
                    prev_space = false;
                }
                None => {
                    buf.push(c);
                    prev_space = c == ' ';
                }
            }
        }
        buf.as_str()
    }

    /// Python's `text.split()`, then each token stripped of ASCII
    /// punctuation unless that leaves two characters or fewer (an emoticon).
    fn tokenize(&self, text: &str, lower: &mut String, tokens: &mut Vec<Token>) {
        lower.clear();
        tokens.clear();
        if text.is_ascii() {
            // Fast path for the common case: bytes, no char decoding.
            let bytes = text.as_bytes();
            let mut i = 0;
            while i < bytes.len() {
                while i < bytes.len() && is_ascii_py_space(bytes[i]) {
                    i += 1;
                }
                let start = i;
                while i < bytes.len() && !is_ascii_py_space(bytes[i]) {
                    i += 1;
                }
                if start == i {
                    break;
                }
                let (mut a, mut b) = (start, i);
                while a < b && bytes[a].is_ascii_punctuation() {
                    a += 1;
                }
                while b > a && bytes[b - 1].is_ascii_punctuation() {
                    b -= 1;
                }
                let word = if b - a <= 2 {
                    &text[start..i]
                } else {
                    &text[a..b]
                };
                self.push_token(word, lower, tokens);
            }
            return;
        }
        for raw in text.split(is_py_space).filter(|w| !w.is_empty()) {
            let stripped = raw.trim_matches(|c: char| c.is_ascii_punctuation());
            let word = if stripped.chars().nth(2).is_none() {
                raw
            } else {
                stripped
            };
            self.push_token(word, lower, tokens);
        }
    }

    fn push_token(&self, word: &str, lower: &mut String, tokens: &mut Vec<Token>) {
        let lo = lower.len();
        let upper = if word.is_ascii() {
            lower.push_str(word);
            lower[lo..].make_ascii_lowercase();
            let bytes = word.as_bytes();
            bytes.iter().any(u8::is_ascii_uppercase) && !bytes.iter().any(u8::is_ascii_lowercase)
        } else {
            // Full Unicode lowering (final sigma included), as str.lower().
            lower.push_str(&word.to_lowercase());
            word.chars().any(char::is_uppercase) && !word.chars().any(char::is_lowercase)
        };
        let hi = lower.len();
        let info = self
            .lex
            .words
            .get(&lower[lo..hi])
            .copied()
            .unwrap_or_default();
        tokens.push(Token {
            lo,
            hi,
            upper,
            info,
        });
    }
}

/// `is_py_space` for one ASCII byte: \t \n \v \f \r, the information
/// separators 0x1c–0x1f, and space.
fn is_ascii_py_space(b: u8) -> bool {
    matches!(b, b'\t'..=b'\r' | 0x1c..=b' ')
}

/// Python's `str.isspace()`: Rust's whitespace plus the four ASCII
/// information separators.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The token list as the rules see it.
struct Words<'a> {
    lower: &'a str,
    tokens: &'a [Token],
}

impl Words<'_> {
    fn len(&self) -> usize {
        self.tokens.len()
    }

    fn at(&self, i: usize) -> &str {
        let t = &self.tokens[i];
        &self.lower[t.lo..t.hi]
    }

    fn in_lexicon(&self, i: usize) -> bool {
        self.tokens[i].info.valence.is_some()
    }

    /// The reference's `negated([word])`.
    fn negated(&self, i: usize) -> bool {
        self.tokens[i].info.negation || self.at(i).contains("n't")
    }
}

/// True when some, but not all, tokens are ALL CAPS.
fn allcap_differential(tokens: &[Token]) -> bool {
    let caps = tokens.iter().filter(|t| t.upper).count();
    caps > 0 && caps < tokens.len()
}

/// The reference's `sentiment_valence` for a lexicon word at `i`.
fn sentiment_valence(words: &Words<'_>, i: usize, base: f64, cap_diff: bool) -> f64 {
    let n = words.len();
    let mut valence = base;
    // "no" before another lexicon word negates it rather than scoring itself.
    if words.at(i) == "no" && i != n - 1 && words.in_lexicon(i + 1) {
        valence = 0.0;
    }
    if (i > 0 && words.at(i - 1) == "no")
        || (i > 1 && words.at(i - 2) == "no")
        || (i > 2 && words.at(i - 3) == "no" && matches!(words.at(i - 1), "or" | "nor"))
    {
        valence = base * N_SCALAR;
    }
    if words.tokens[i].upper && cap_diff {
        if valence > 0.0 {
            valence += C_INCR;
        } else {
            valence -= C_INCR;
        }
    }
    for start_i in 0..3 {
        if i > start_i && !words.in_lexicon(i - (start_i + 1)) {
            let mut s = scalar_inc_dec(&words.tokens[i - (start_i + 1)], valence, cap_diff);
            if start_i == 1 && s != 0.0 {
                s *= 0.95;
            }
            if start_i == 2 && s != 0.0 {
                s *= 0.9;
            }
            valence += s;
            valence = negation_check(valence, words, start_i, i);
            if start_i == 2 {
                valence = special_idioms_check(valence, words, i);
            }
        }
    }
    least_check(valence, words, i)
}

/// Scalar a preceding booster/dampener adds, signed like the valence.
fn scalar_inc_dec(token: &Token, valence: f64, cap_diff: bool) -> f64 {
    let mut scalar = token.info.booster;
    if scalar == 0.0 {
        return 0.0;
    }
    if valence < 0.0 {
        scalar = -scalar;
    }
    if token.upper && cap_diff {
        if valence > 0.0 {
            scalar += C_INCR;
        } else {
            scalar -= C_INCR;
        }
    }
    scalar
}

fn negation_check(valence: f64, words: &Words<'_>, start_i: usize, i: usize) -> f64 {
    let so_or_this = |j: usize| matches!(words.at(j), "so" | "this");
    match start_i {
        0 if words.negated(i - 1) => valence * N_SCALAR,
        1 => {
            if words.at(i - 2) == "never" && so_or_this(i - 1) {
                valence * 1.25
            } else if words.at(i - 2) == "without" && words.at(i - 1) == "doubt" {
                valence
            } else if words.negated(i - 2) {
                valence * N_SCALAR
            } else {
                valence
            }
        }
        2 => {
            // Reference precedence: (never and so/this two back) or so/this
            // right before.
            if (words.at(i - 3) == "never" && so_or_this(i - 2)) || so_or_this(i - 1) {
                valence * 1.25
            } else if words.at(i - 3) == "without"
                && (words.at(i - 2) == "doubt" || words.at(i - 1) == "doubt")
            {
                valence
            } else if words.negated(i - 3) {
                valence * N_SCALAR
            } else {
                valence
            }
        }
        _ => valence,
    }
}

fn special_bigram(a: &str, b: &str) -> Option<f64> {
    SPECIAL_BIGRAMS
        .iter()
        .find(|([x, y], _)| *x == a && *y == b)
        .map(|&(_, v)| v)
}

fn special_trigram(a: &str, b: &str, c: &str) -> Option<f64> {
    SPECIAL_TRIGRAMS
        .iter()
        .find(|([x, y, z], _)| *x == a && *y == b && *z == c)
        .map(|&(_, v)| v)
}

/// Idioms around a lexicon word at `i` (only called with `i >= 3`).
fn special_idioms_check(mut valence: f64, words: &Words<'_>, i: usize) -> f64 {
    let (w3, w2, w1, w0) = (
        words.at(i - 3),
        words.at(i - 2),
        words.at(i - 1),
        words.at(i),
    );
    // Same order as the reference: first match wins.
    let found = special_bigram(w1, w0)
        .or_else(|| special_trigram(w2, w1, w0))
        .or_else(|| special_bigram(w2, w1))
        .or_else(|| special_trigram(w3, w2, w1))
        .or_else(|| special_bigram(w3, w2));
    if let Some(v) = found {
        valence = v;
    }
    let n = words.len();
    if n - 1 > i {
        if let Some(v) = special_bigram(w0, words.at(i + 1)) {
            valence = v;
        }
    }
    if n - 1 > i + 1 {
        if let Some(v) = special_trigram(w0, words.at(i + 1), words.at(i + 2)) {
            valence = v;
        }
    }
    // Dampener bigrams such as "kind of" before the word.
    for (a, b) in [(w3, w2), (w2, w1)] {
        if let Some(&(_, scalar)) = BOOSTER_BIGRAMS
            .iter()
            .find(|([x, y], _)| *x == a && *y == b)
        {
            valence += scalar;
        }
    }
    valence
}

/// "least" before a word negates it, except in "at least" / "very least".
fn least_check(valence: f64, words: &Words<'_>, i: usize) -> f64 {
    if i > 0 && !words.in_lexicon(i - 1) && words.at(i - 1) == "least" {
        if i > 1 && matches!(words.at(i - 2), "at" | "very") {
            return valence;
        }
        return valence * N_SCALAR;
    }
    valence
}

/// Contrastive "but": halve what comes before the first "but", weight what
/// follows by 1.5. Reproduces the reference's `list.index` lookup, which
/// rescales the *first* entry equal to each value, so repeated valences are
/// treated exactly as there.
fn but_check(words: &Words<'_>, sentiments: &mut [f64]) {
    let Some(bi) = (0..words.len()).find(|&j| words.at(j) == "but") else {
        return;
    };
    for k in 0..sentiments.len() {
        let v = sentiments[k];
        // Rescaling a zero leaves a zero: skip the search.
        if v == 0.0 {
            continue;
        }
        let si = sentiments.iter().position(|&x| x == v).unwrap_or(k);
        if si < bi {
            sentiments[si] = v * 0.5;
        } else if si > bi {
            sentiments[si] = v * 1.5;
        }
    }
}

/// Exclamation marks (up to 4) and question marks (2 or more) add emphasis.
fn punctuation_emphasis(text: &str) -> f64 {
    let (mut ep, mut qm) = (0_u32, 0_u32);
    for &b in text.as_bytes() {
        match b {
            b'!' => ep += 1,
            b'?' => qm += 1,
            _ => {}
        }
    }
    let ep_amplifier = f64::from(ep.min(4)) * 0.292;
    let qm_amplifier = match qm {
        0 | 1 => 0.0,
        2 | 3 => f64::from(qm) * 0.18,
        _ => 0.96,
    };
    ep_amplifier + qm_amplifier
}

/// Map an unbounded sum into −1…1.
fn normalize(score: f64) -> f64 {
    let norm = score / (score * score + ALPHA).sqrt();
    norm.clamp(-1.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(text: &str) -> f64 {
        SentimentScorer::new().compound(text)
    }

    fn round4(x: f64) -> f64 {
        (x * 10_000.0).round() / 10_000.0
    }

    #[test]
    fn lexicon_loads_fully() {
        let lex = Lexicon::get();
        // 7,520 entries in the file, some repeated.
        assert!(lex.words.len() > 7_400, "{}", lex.words.len());
        assert_eq!(lex.words["good"].valence, Some(1.9));
        assert_eq!(lex.words["extremely"].booster, B_INCR);
        assert!(lex.words["not"].negation);
        assert!(lex.emoji.len() > 1_000);
    }

    #[test]
    fn empty_and_wordless_text_is_zero() {
        assert_eq!(c(""), 0.0);
        assert_eq!(c("   \n\t"), 0.0);
        assert_eq!(c("12345 ... ?!"), 0.0);
        assert_eq!(c("the ticket is 12345"), 0.0);
    }

    #[test]
    fn classic_examples_match_reference_values() {
        // Values printed by vaderSentiment 3.3.2's own demo.
        let cases = [
            ("VADER is smart, handsome, and funny.", 0.8316),
            ("VADER is smart, handsome, and funny!", 0.8439),
            ("VADER is very smart, handsome, and funny.", 0.8545),
            ("VADER is VERY SMART, handsome, and FUNNY.", 0.9227),
            ("VADER is VERY SMART, handsome, and FUNNY!!!", 0.9342),
            ("VADER is not smart, handsome, nor funny.", -0.7424),
            ("The book was good.", 0.4404),
            ("At least it isn't a horrible book.", 0.431),
            ("The book was only kind of good.", 0.3832),
            ("Today SUX!", -0.5461),
            ("Not bad at all", 0.431),
        ];
        for (text, want) in cases {
            assert_eq!(round4(c(text)), want, "{text}");
        }
    }

    #[test]
    fn negation_flips_and_dampens() {
        assert!(c("the agent was helpful") > 0.05);
        assert!(c("the agent was not helpful") < -0.05);
        assert!(c("the agent wasn't helpful") < -0.05);
    }

    #[test]
    fn but_shifts_weight_to_the_second_clause() {
        let s = c("The agent was friendly but the wait was terrible");
        assert!(s < -0.05, "{s}");
    }

    #[test]
    fn emphasis_raises_intensity() {
        let plain = c("The service was bad");
        assert!(c("The service was bad!!!") < plain);
        assert!(c("The service was BAD") < plain);
        assert!(c("The service was extremely bad") < plain);
        assert!(c("The service was somewhat bad") > plain);
        // The reference adds the "kind of" scalar whatever the word's sign,
        // so it makes a negative word more negative; kept for fidelity.
        assert_eq!(round4(c("The service was kind of bad")), -0.5849);
    }

    #[test]
    fn emoji_are_described() {
        assert!(c("thanks 😁") > c("thanks"));
    }

    #[test]
    fn labels_follow_the_contract() {
        assert_eq!(label(0.05), SentimentLabel::Positive);
        assert_eq!(label(0.049), SentimentLabel::Neutral);
        assert_eq!(label(-0.05), SentimentLabel::Negative);
        assert_eq!(label(-0.049), SentimentLabel::Neutral);
        assert_eq!(label(f64::NAN), SentimentLabel::Neutral);
        assert_eq!(SentimentLabel::Negative.to_string(), "negative");
    }

    #[test]
    fn compound_is_always_in_range() {
        let long = "GREAT!!! ".repeat(500);
        let s = c(&long);
        assert!((-1.0..=1.0).contains(&s), "{s}");
        assert!(c(&"horrible awful terrible ".repeat(300)) >= -1.0);
    }
}
