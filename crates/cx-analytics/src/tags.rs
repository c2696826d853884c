//! Topic tags from a keyword taxonomy.
//!
//! Matching is by word forms, not substrings: text and keywords are split
//! into words the same way, lowercased and stemmed (the light stemmer in
//! `stem.rs`), and a keyword matches where its stems occur as consecutive
//! words. So "cancel" finds "cancelled" and "cancellation" but not
//! "scancel", and "bill" finds "billing" but not "billion".
//!
//! A word is a run of letters and digits; an apostrophe between two of them
//! is dropped ("don't" → "dont", "agent's" → "agents" → stem "agent"), any
//! other character separates words ("follow-up" → "follow", "up").

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use foldhash::fast::RandomState;
use serde::{Deserialize, Serialize};

use crate::stem::stem_in_place;

/// Topics and the keywords that signal them; deserialisable from config,
/// e.g. TOML:
///
/// ```toml
/// [[topics]]
/// name = "billing"
/// keywords = ["bill", "invoice", "charged twice"]
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Taxonomy {
    pub topics: Vec<Topic>,
}

/// One topic. Keywords may be phrases ("on hold"); each word of a keyword
/// matches any inflection of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topic {
    pub name: String,
    pub keywords: Vec<String>,
}

/// Why a taxonomy cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaxonomyError {
    #[error("topic #{index} has an empty name")]
    EmptyName { index: usize },
    #[error("topic {name:?} is defined more than once")]
    DuplicateName { name: String },
    #[error("topic {topic:?} has no keywords")]
    NoKeywords { topic: String },
    #[error("topic {topic:?}: keyword #{index} ({keyword:?}) has no letters or digits")]
    EmptyKeyword {
        topic: String,
        index: usize,
        keyword: String,
    },
}

impl Taxonomy {
    /// A starting taxonomy for contact-centre verbatims (English).
    pub fn contact_centre_default() -> Taxonomy {
        const DEFAULT: &[(&str, &[&str])] = &[
            (
                "agent_attitude",
                &[
                    "rude",
                    "rudely",
                    "rudeness",
                    "unhelpful",
                    "unprofessional",
                    "arrogant",
                    "condescending",
                    "patronising",
                    "patronizing",
                    "dismissive",
                    "sarcastic",
                    "attitude",
                    "hung up on me",
                    "hang up on me",
                    "yelled",
                    "shouted at",
                    "ignored",
                    "did not listen",
                    "didn't listen",
                    "couldn't care less",
                ],
            ),
            (
                "billing",
                &[
                    "bill",
                    "invoice",
                    "charge",
                    "overcharge",
                    "double charged",
                    "charged twice",
                    "direct debit",
                    "payment",
                    "fee",
                    "late fee",
                    "statement",
                    "tariff",
                    "price increase",
                    "balance",
                    "billing error",
                    "paid",
                ],
            ),
            (
                "cancellation",
                &[
                    "cancel",
                    "terminate",
                    "termination",
                    "close my account",
                    "close the account",
                    "unsubscribe",
                    "end my contract",
                    "switch provider",
                    "switching to",
                    "leaving you",
                    "take my business elsewhere",
                    "going elsewhere",
                    "not renew",
                    "opt out",
                ],
            ),
            (
                "delivery",
                &[
                    "delivery",
                    "shipping",
                    "shipment",
                    "parcel",
                    "package",
                    "courier",
                    "tracking number",
                    "never arrived",
                    "not arrived",
                    "still waiting for my order",
                    "lost in the post",
                    "dispatch",
                    "late delivery",
                    "wrong address",
                    "left outside",
                ],
            ),
            (
                "fraud_security",
                &[
                    "fraud",
                    "fraudulent",
                    "scam",
                    "unauthorised",
                    "unauthorized",
                    "hacked",
                    "stolen",
                    "identity theft",
                    "phishing",
                    "suspicious",
                    "security",
                    "password",
                    "compromised",
                    "data breach",
                    "did not authorise",
                    "did not authorize",
                ],
            ),
            (
                "legal_threat",
                &[
                    "lawyer",
                    "solicitor",
                    "attorney",
                    "legal action",
                    "sue",
                    "suing",
                    "sued",
                    "court",
                    "small claims",
                    "ombudsman",
                    "regulator",
                    "trading standards",
                    "formal complaint",
                    "file a complaint",
                    "report you",
                    "better business bureau",
                ],
            ),
            (
                "praise",
                &[
                    "thank",
                    "thank you",
                    "helpful",
                    "excellent",
                    "fantastic",
                    "brilliant",
                    "amazing",
                    "friendly",
                    "polite",
                    "patient",
                    "professional",
                    "above and beyond",
                    "great service",
                    "well done",
                    "courteous",
                    "knowledgeable",
                ],
            ),
            (
                "product_defect",
                &[
                    "broken",
                    "broke",
                    "defective",
                    "defect",
                    "faulty",
                    "damaged",
                    "cracked",
                    "stopped working",
                    "doesn't work",
                    "does not work",
                    "malfunction",
                    "poor quality",
                    "fell apart",
                    "dead on arrival",
                    "leaking",
                    "missing parts",
                    "wrong item",
                ],
            ),
            (
                "refund",
                &[
                    "refund",
                    "money back",
                    "reimburse",
                    "reimbursement",
                    "compensation",
                    "credit back",
                    "chargeback",
                    "return label",
                    "sent it back",
                    "send it back",
                    "store credit",
                ],
            ),
            (
                "technical_issue",
                &[
                    "error",
                    "error message",
                    "crash",
                    "bug",
                    "glitch",
                    "outage",
                    "not working",
                    "login",
                    "log in",
                    "website",
                    "app",
                    "internet",
                    "connection",
                    "wifi",
                    "no signal",
                    "reset",
                    "software update",
                    "freeze",
                ],
            ),
            (
                "transfer",
                &[
                    "transfer",
                    "passed around",
                    "passed from",
                    "bounced around",
                    "put through to",
                    "another department",
                    "different department",
                    "wrong department",
                    "redirected",
                    "handed off",
                    "five different people",
                    "multiple agents",
                    "repeat myself",
                    "explain again",
                ],
            ),
            (
                "wait_time",
                &[
                    "wait",
                    "hold",
                    "on hold",
                    "queue",
                    "forever",
                    "for hours",
                    "took hours",
                    "long time",
                    "took ages",
                    "for ages",
                    "slow",
                    "callback",
                    "call back",
                    "call me back",
                    "no answer",
                    "still waiting",
                ],
            ),
        ];
        Taxonomy {
            topics: DEFAULT
                .iter()
                .map(|(name, keywords)| Topic {
                    name: (*name).to_owned(),
                    keywords: keywords.iter().map(|k| (*k).to_owned()).collect(),
                })
                .collect(),
        }
    }

    /// Validate and precompute the stems for matching.
    pub fn compile(&self) -> Result<TagMatcher, TaxonomyError> {
        // Validate everything first so the error names the first problem in
        // file order.
        let mut seen_names = HashSet::new();
        let mut stems = Stems::default();
        for (index, topic) in self.topics.iter().enumerate() {
            if topic.name.trim().is_empty() {
                return Err(TaxonomyError::EmptyName { index });
            }
            if !seen_names.insert(topic.name.as_str()) {
                return Err(TaxonomyError::DuplicateName {
                    name: topic.name.clone(),
                });
            }
            if topic.keywords.is_empty() {
                return Err(TaxonomyError::NoKeywords {
                    topic: topic.name.clone(),
                });
            }
            for (index, keyword) in topic.keywords.iter().enumerate() {
                stems.fill(keyword);
                if stems.is_empty() {
                    return Err(TaxonomyError::EmptyKeyword {
                        topic: topic.name.clone(),
                        index,
                        keyword: keyword.clone(),
                    });
                }
            }
        }

        // Rank topics by name so that output in rank order is sorted.
        let mut order: Vec<usize> = (0..self.topics.len()).collect();
        order.sort_by(|&a, &b| self.topics[a].name.cmp(&self.topics[b].name));

        let mut by_first: HashMap<Box<str>, Vec<Phrase>, RandomState> = HashMap::default();
        let mut rest_stems: Vec<Box<str>> = Vec::new();
        let mut unique: HashSet<(usize, Vec<String>)> = HashSet::new();
        for (rank, &t) in order.iter().enumerate() {
            for keyword in &self.topics[t].keywords {
                stems.fill(keyword);
                let words: Vec<String> = stems.iter().map(str::to_owned).collect();
                // "bill" and "bills" compile to the same phrase: keep one.
                if !unique.insert((rank, words.clone())) {
                    continue;
                }
                let start = rest_stems.len();
                rest_stems.extend(words[1..].iter().map(|w| Box::from(w.as_str())));
                by_first
                    .entry(Box::from(words[0].as_str()))
                    .or_default()
                    .push(Phrase {
                        topic: rank,
                        rest: start..rest_stems.len(),
                    });
            }
        }
        Ok(TagMatcher {
            names: order
                .iter()
                .map(|&t| self.topics[t].name.clone().into_boxed_str())
                .collect(),
            by_first,
            rest_stems,
        })
    }
}

/// A keyword, filed under its first stem.
#[derive(Debug, Clone)]
struct Phrase {
    /// Rank of the topic in name order.
    topic: usize,
    /// The stems after the first, in `TagMatcher::rest_stems`.
    rest: std::ops::Range<usize>,
}

/// A compiled [`Taxonomy`]; cheap to share between threads.
#[derive(Debug, Clone)]
pub struct TagMatcher {
    /// Topic names, sorted; a topic's index here is its rank.
    names: Vec<Box<str>>,
    by_first: HashMap<Box<str>, Vec<Phrase>, RandomState>,
    rest_stems: Vec<Box<str>>,
}

impl TagMatcher {
    /// Names of the topics whose keywords occur in `text`, sorted, each once.
    pub fn tags(&self, text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        self.tags_into(text, &mut out);
        out
    }

    /// Same, appending into a caller-owned Vec (not cleared first), so a
    /// caller that reuses it allocates nothing per text.
    pub fn tags_into<'a>(&'a self, text: &str, out: &mut Vec<&'a str>) {
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => {
                self.collect(text, &mut scratch, out);
                scratch.trim();
            }
            // Only reachable through re-entrancy; stay correct.
            Err(_) => self.collect(text, &mut Scratch::default(), out),
        });
    }

    /// Number of topics.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Topic names, sorted.
    pub fn topic_names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|n| &**n)
    }

    fn collect<'a>(&'a self, text: &str, scratch: &mut Scratch, out: &mut Vec<&'a str>) {
        let Scratch { stems, found } = scratch;
        stems.fill(text);
        found.clear();
        found.resize(self.names.len().div_ceil(64), 0);
        let mut remaining = self.names.len();
        let n = stems.len();
        'words: for i in 0..n {
            let Some(phrases) = self.by_first.get(stems.get(i)) else {
                continue;
            };
            for phrase in phrases {
                let (word, bit) = (phrase.topic / 64, 1_u64 << (phrase.topic % 64));
                if found[word] & bit != 0 {
                    continue;
                }
                let rest = &self.rest_stems[phrase.rest.clone()];
                if i + rest.len() >= n {
                    continue;
                }
                if rest
                    .iter()
                    .enumerate()
                    .all(|(k, stem)| stems.get(i + 1 + k) == &**stem)
                {
                    found[word] |= bit;
                    remaining -= 1;
                    if remaining == 0 {
                        break 'words;
                    }
                }
            }
        }
        for (w, &bits) in found.iter().enumerate() {
            let mut bits = bits;
            while bits != 0 {
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                out.push(&self.names[w * 64 + b]);
            }
        }
    }
}

/// Stems of the words of one text, in one string.
#[derive(Default)]
struct Stems {
    arena: String,
    spans: Vec<(usize, usize)>,
    word: String,
}

impl Stems {
    fn len(&self) -> usize {
        self.spans.len()
    }

    fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    fn get(&self, i: usize) -> &str {
        let (lo, hi) = self.spans[i];
        &self.arena[lo..hi]
    }

    fn iter(&self) -> impl Iterator<Item = &str> {
        self.spans.iter().map(|&(lo, hi)| &self.arena[lo..hi])
    }

    /// Split `text` into words, lowercase and stem each.
    fn fill(&mut self, text: &str) {
        self.arena.clear();
        self.spans.clear();
        self.word.clear();
        if text.is_ascii() {
            // Fast path for the common case: bytes, no char decoding.
            let bytes = text.as_bytes();
            for (i, &b) in bytes.iter().enumerate() {
                if b.is_ascii_alphanumeric() {
                    self.word.push(char::from(b.to_ascii_lowercase()));
                } else if b == b'\''
                    && !self.word.is_empty()
                    && bytes.get(i + 1).is_some_and(u8::is_ascii_alphanumeric)
                {
                    // Inside a word: "don't", "agent's".
                } else {
                    self.end_word();
                }
            }
            self.end_word();
            return;
        }
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c.is_alphanumeric() {
                if c.is_ascii() {
                    self.word.push(c.to_ascii_lowercase());
                } else {
                    self.word.extend(c.to_lowercase());
                }
            } else if is_apostrophe(c)
                && !self.word.is_empty()
                && chars.peek().is_some_and(|n| n.is_alphanumeric())
            {
                // Inside a word: "don't", "agent's".
            } else {
                self.end_word();
            }
        }
        self.end_word();
    }

    fn end_word(&mut self) {
        if self.word.is_empty() {
            return;
        }
        stem_in_place(&mut self.word);
        let lo = self.arena.len();
        self.arena.push_str(&self.word);
        self.spans.push((lo, self.arena.len()));
        self.word.clear();
    }
}

fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '\u{2019}')
}

#[derive(Default)]
struct Scratch {
    stems: Stems,
    found: Vec<u64>,
}

impl Scratch {
    /// Drop buffers that one huge text blew up.
    fn trim(&mut self) {
        if self.stems.arena.capacity() > 64 * 1024 || self.stems.spans.capacity() > 8 * 1024 {
            self.stems = Stems::default();
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}
