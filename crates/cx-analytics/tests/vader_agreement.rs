//! The Rust VADER port against the Python reference (vaderSentiment 3.3.2).
//!
//! `tests/fixtures/vader_reference.tsv` holds the reference's compound score
//! for every sentence of `tests/fixtures/sentences.txt`. To regenerate it
//! after editing the sentences, from the crate directory:
//!
//! ```text
//! pip install vaderSentiment==3.3.2
//! python3 tools/vader_reference.py tests/fixtures/sentences.txt \
//!     > tests/fixtures/vader_reference.tsv
//! ```

use cx_analytics::{label, SentimentScorer};

const SENTENCES: &str = include_str!("fixtures/sentences.txt");
const REFERENCE: &str = include_str!("fixtures/vader_reference.tsv");

fn content_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
}

fn reference() -> Vec<(&'static str, f64)> {
    content_lines(REFERENCE)
        .map(|line| {
            let (sentence, score) = line
                .rsplit_once('\t')
                .unwrap_or_else(|| panic!("no tab in reference line {line:?}"));
            let score: f64 = score
                .parse()
                .unwrap_or_else(|e| panic!("bad score in {line:?}: {e}"));
            (sentence, score)
        })
        .collect()
}

#[test]
fn fixture_is_current() {
    let sentences: Vec<&str> = content_lines(SENTENCES).collect();
    let scored: Vec<&str> = reference().into_iter().map(|(s, _)| s).collect();
    assert_eq!(
        sentences, scored,
        "vader_reference.tsv is stale: regenerate it (see this file's header)"
    );
    assert!(sentences.len() >= 120, "{} sentences", sentences.len());
}

#[test]
fn agrees_with_reference() {
    let scorer = SentimentScorer::new();
    let cases = reference();
    let (mut exact, mut same_label, mut max_diff) = (0, 0, 0.0_f64);
    let mut far = Vec::new();
    for &(sentence, want) in &cases {
        let got = scorer.compound(sentence);
        // The reference reports round(compound, 4).
        let rounded = (got * 10_000.0).round() / 10_000.0;
        let diff = (rounded - want).abs();
        max_diff = max_diff.max(diff);
        if diff < 1e-9 {
            exact += 1;
        }
        if label(got) == label(want) {
            same_label += 1;
        }
        if diff > 0.05 {
            far.push(format!("{sentence:?}: got {got:.4}, reference {want}"));
        }
    }
    let n = cases.len();
    eprintln!(
        "VADER agreement over {n} sentences: {exact} identical to 4 decimals, \
         {same_label} same label, max |diff| {max_diff:.4}"
    );
    assert!(far.is_empty(), "more than 0.05 off:\n{}", far.join("\n"));
    assert!(
        same_label * 100 >= n * 98,
        "labels agree on only {same_label}/{n}"
    );
    // The port is meant to be exact; keep it so.
    assert_eq!(exact, n, "only {exact}/{n} identical to 4 decimals");
}

#[test]
fn ascii_fast_path_matches_general_path() {
    // A trailing ideographic space adds no token and no punctuation but
    // makes the text non-ASCII, so the general tokenizer runs instead.
    let scorer = SentimentScorer::new();
    for sentence in content_lines(SENTENCES).filter(|s| s.is_ascii()) {
        let general = format!("{sentence}\u{3000}");
        assert_eq!(
            scorer.compound(sentence).to_bits(),
            scorer.compound(&general).to_bits(),
            "{sentence:?}"
        );
    }
}
