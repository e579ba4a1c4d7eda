//! IMDB review loader and tokenizers whose vocabulary does not depend on the private split.
//!
//! # Privacy contract
//!
//! Nothing about the tokenizer is computed from the reviews being loaded. The word-level
//! tokenizer uses the first `K` lines of `imdb.vocab`, the vocabulary file published with the
//! data set; the byte-level tokenizer has no vocabulary at all. So the map from a review to its
//! token ids is a fixed public function, and a DP guarantee computed for training on the token
//! ids covers the raw reviews too. (Building a vocabulary from the training split's word
//! frequencies would leak those frequencies outside any DP guarantee; this module never does.)
//!
//! # Ids
//!
//! `0` = padding, `1` = unknown word, `2 + j` = line `j` (0-based) of `imdb.vocab`. The model's
//! embedding table needs [`Tokenizer::num_ids`] rows. Byte level: `2 + byte`, 258 ids.
//!
//! # Word tokenization
//!
//! 1. every `<br />` (also `<br/>`, `<br>`) becomes a space;
//! 2. the text is lower-cased (Unicode);
//! 3. words are maximal runs of alphanumeric characters (Unicode), where an apostrophe `'` that
//!    has an alphanumeric character on both sides stays inside the word (`don't`, `high's`),
//!    and every other character separates words;
//! 4. each word maps to its id (unknown words to `1`); the sequence is cut to its first
//!    `max_len` ids and padded with `0` at the end.
//!
//! Vocabulary lines the rule can never produce (`!`, `sci-fi`) keep their id but never occur.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::cifar10::Split;
use crate::error::{DataError, Result};
use crate::setup::{Corpus, IMDB_DIR_NAME, missing_data_message};

/// Id of padding positions.
pub const PAD_ID: u32 = 0;
/// Id of words outside the vocabulary.
pub const UNK_ID: u32 = 1;
/// Number of reserved ids before the first vocabulary word or byte.
pub const RESERVED_IDS: u32 = 2;
/// Number of ids of the byte-level tokenizer (2 reserved + 256 bytes).
pub const BYTE_IDS: usize = 258;

/// The first `K` lines of a vocabulary file, with the word → id map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocab {
    words: Vec<String>,
    index: HashMap<String, u32>,
}

impl Vocab {
    /// Reads the first `k` lines of `path` (e.g. `aclImdb/imdb.vocab`, which lists words by
    /// decreasing corpus frequency). `k` must be in `1..=` the number of non-empty lines. If a
    /// word repeats, its first line's id is used. O(k) time after reading the file.
    pub fn from_file(path: &Path, k: usize) -> Result<Self> {
        let text = fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        if k == 0 || k > lines.len() {
            return Err(DataError::InvalidArgument {
                name: "vocab_size",
                reason: format!(
                    "must be in 1..={} (the lines of {}), got {k}",
                    lines.len(),
                    path.display()
                ),
            });
        }
        Ok(Vocab::from_words(lines[..k].iter().map(|l| l.trim())))
    }

    /// A vocabulary from words in id order (word `j` gets id `2 + j`).
    pub fn from_words<S: Into<String>>(words: impl IntoIterator<Item = S>) -> Self {
        let words: Vec<String> = words.into_iter().map(Into::into).collect();
        let mut index = HashMap::with_capacity(words.len());
        for (j, w) in words.iter().enumerate() {
            index.entry(w.clone()).or_insert(RESERVED_IDS + j as u32);
        }
        Vocab { words, index }
    }

    /// Number of words `K`.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// True when there are no words.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The id of `word` ([`UNK_ID`] when absent).
    pub fn id(&self, word: &str) -> u32 {
        self.index.get(word).copied().unwrap_or(UNK_ID)
    }

    /// The word of id `id` (`None` for padding, unknown and out-of-range ids).
    pub fn word(&self, id: u32) -> Option<&str> {
        id.checked_sub(RESERVED_IDS)
            .and_then(|j| self.words.get(j as usize))
            .map(String::as_str)
    }
}

/// How text becomes ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tokenizer {
    /// Word level with a public vocabulary (see the module documentation).
    Vocab(Vocab),
    /// Byte level: id = byte + 2 of the UTF-8 text after `<br />` removal (no lower-casing).
    Bytes,
}

impl Tokenizer {
    /// Number of distinct ids (embedding rows): `K + 2`, or 258 for bytes.
    pub fn num_ids(&self) -> usize {
        match self {
            Tokenizer::Vocab(v) => v.len() + RESERVED_IDS as usize,
            Tokenizer::Bytes => BYTE_IDS,
        }
    }

    /// The ids of `text`, cut to `max_len` and padded with [`PAD_ID`] to exactly `max_len`
    /// (`max_len ≥ 1`). Returns the ids and the number of non-padding positions. O(|text|).
    pub fn encode(&self, text: &str, max_len: usize) -> Result<(Vec<u32>, usize)> {
        check_max_len(max_len)?;
        let mut ids = Vec::with_capacity(max_len);
        self.encode_into(text, max_len, &mut ids);
        let used = ids.len();
        ids.resize(max_len, PAD_ID);
        Ok((ids, used))
    }

    /// Appends at most `max_len` ids of `text` to `out` (no padding).
    fn encode_into(&self, text: &str, max_len: usize, out: &mut Vec<u32>) {
        let clean = strip_line_breaks(text);
        match self {
            Tokenizer::Bytes => {
                out.extend(clean.bytes().take(max_len).map(|b| b as u32 + RESERVED_IDS));
            }
            Tokenizer::Vocab(v) => {
                let start = out.len();
                for_each_word(&clean.to_lowercase(), |w| {
                    if out.len() - start < max_len {
                        out.push(v.id(w));
                        true
                    } else {
                        false
                    }
                });
            }
        }
    }
}

fn check_max_len(max_len: usize) -> Result<()> {
    if max_len == 0 {
        return Err(DataError::InvalidArgument {
            name: "max_len",
            reason: "must be at least 1, got 0".into(),
        });
    }
    Ok(())
}

/// Replaces the HTML line breaks of the reviews (`<br />`, `<br/>`, `<br>`) with spaces.
fn strip_line_breaks(text: &str) -> String {
    text.replace("<br />", " ")
        .replace("<br/>", " ")
        .replace("<br>", " ")
}

/// Calls `f` on each word of `text` (already lower-cased) until it returns false.
fn for_each_word(text: &str, mut f: impl FnMut(&str) -> bool) {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut start: Option<usize> = None;
    for k in 0..chars.len() {
        let (pos, c) = chars[k];
        let inside = c.is_alphanumeric()
            || (c == '\''
                && start.is_some()
                && chars.get(k + 1).is_some_and(|(_, n)| n.is_alphanumeric()));
        match (inside, start) {
            (true, None) => start = Some(pos),
            (false, Some(s)) => {
                start = None;
                if !f(&text[s..pos]) {
                    return;
                }
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        f(&text[s..]);
    }
}

/// The words of `text` under the module's rule (line breaks removed, lower-cased, split).
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each_word(&strip_line_breaks(text).to_lowercase(), |w| {
        out.push(w.to_string());
        true
    });
    out
}

/// Tokenized reviews: `n` rows of exactly `max_len` ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextDataset {
    /// `n × max_len` ids, row-major; row `i` is `tokens[i·max_len .. (i+1)·max_len]`.
    pub tokens: Vec<u32>,
    /// `n` labels: 1 = positive review, 0 = negative.
    pub labels: Vec<u8>,
    /// Number of non-padding ids of each row (≤ `max_len`).
    pub lengths: Vec<u32>,
    /// The star rating from each file name (1..=10; 0 for generated data).
    pub ratings: Vec<u8>,
    /// Number of rows.
    pub n: usize,
    /// Row length.
    pub max_len: usize,
    /// Number of distinct ids (embedding rows) of the tokenizer.
    pub num_ids: usize,
}

impl TextDataset {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Row `i` (`None` when `i ≥ n`).
    pub fn row(&self, i: usize) -> Option<&[u32]> {
        (i < self.n).then(|| &self.tokens[i * self.max_len..(i + 1) * self.max_len])
    }

    /// The first `k` rows (`1 ≤ k ≤ n`); with the loader's order, label-balanced for even `k`.
    pub fn subset(&self, k: usize) -> Result<TextDataset> {
        if k == 0 || k > self.n {
            return Err(DataError::InvalidArgument {
                name: "k",
                reason: format!("must be in 1..={}, got {k}", self.n),
            });
        }
        Ok(TextDataset {
            tokens: self.tokens[..k * self.max_len].to_vec(),
            labels: self.labels[..k].to_vec(),
            lengths: self.lengths[..k].to_vec(),
            ratings: self.ratings[..k].to_vec(),
            n: k,
            max_len: self.max_len,
            num_ids: self.num_ids,
        })
    }
}

/// The IMDB review loader.
#[derive(Debug, Clone, Copy)]
pub struct Imdb;

impl Imdb {
    /// Loads a split with the word tokenizer over the first `vocab_size` lines of
    /// `<dir>/imdb.vocab`; see [`Imdb::load_with`].
    pub fn load(
        dir: &Path,
        split: Split,
        vocab_size: usize,
        max_len: usize,
    ) -> Result<TextDataset> {
        let dir = aclimdb_dir(dir);
        let vocab_path = dir.join("imdb.vocab");
        if !vocab_path.is_file() {
            return Err(DataError::Missing {
                message: missing_data_message(Corpus::Imdb, &dir, &["imdb.vocab"]),
            });
        }
        let vocab = Vocab::from_file(&vocab_path, vocab_size)?;
        Imdb::load_with(&dir, split, &Tokenizer::Vocab(vocab), max_len)
    }

    /// Loads `<dir>/{train|test}/{neg,pos}/<id>_<rating>.txt` (`dir` is the `aclImdb` folder or
    /// its parent) and tokenizes each review to `max_len` ids.
    ///
    /// Row order (deterministic, independent of the file system): negative reviews sorted by
    /// id, positive reviews sorted by id, interleaved `neg₀, pos₀, neg₁, pos₁, …` (the longer
    /// list's rest at the end), so every even-length prefix is balanced when the counts are.
    /// O(total text size) time.
    pub fn load_with(
        dir: &Path,
        split: Split,
        tokenizer: &Tokenizer,
        max_len: usize,
    ) -> Result<TextDataset> {
        check_max_len(max_len)?;
        let dir = aclimdb_dir(dir);
        let split_name = match split {
            Split::Train => "train",
            Split::Test => "test",
        };
        let mut lists = Vec::new();
        for class in ["neg", "pos"] {
            let folder = dir.join(split_name).join(class);
            if !folder.is_dir() {
                let rel = format!("{split_name}/{class}");
                return Err(DataError::Missing {
                    message: missing_data_message(Corpus::Imdb, &dir, &[rel.as_str()]),
                });
            }
            lists.push(review_files(&folder)?);
        }
        let (neg, pos) = (&lists[0], &lists[1]);
        let mut order: Vec<(&ReviewFile, u8)> = Vec::with_capacity(neg.len() + pos.len());
        for k in 0..neg.len().max(pos.len()) {
            if let Some(f) = neg.get(k) {
                order.push((f, 0));
            }
            if let Some(f) = pos.get(k) {
                order.push((f, 1));
            }
        }
        let n = order.len();
        let mut ds = TextDataset {
            tokens: Vec::with_capacity(n * max_len),
            labels: Vec::with_capacity(n),
            lengths: Vec::with_capacity(n),
            ratings: Vec::with_capacity(n),
            n,
            max_len,
            num_ids: tokenizer.num_ids(),
        };
        for (f, label) in order {
            let bytes = fs::read(&f.path).map_err(|e| DataError::io(&f.path, e))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| DataError::malformed(&f.path, "review is not valid UTF-8"))?;
            let start = ds.tokens.len();
            tokenizer.encode_into(&text, max_len, &mut ds.tokens);
            ds.lengths.push((ds.tokens.len() - start) as u32);
            ds.tokens.resize(start + max_len, PAD_ID);
            ds.labels.push(label);
            ds.ratings.push(f.rating);
        }
        Ok(ds)
    }
}

/// One review file and the numbers in its name.
struct ReviewFile {
    path: PathBuf,
    id: u64,
    rating: u8,
}

/// The `<id>_<rating>.txt` files of a folder, sorted by id.
fn review_files(folder: &Path) -> Result<Vec<ReviewFile>> {
    let mut files = Vec::new();
    let rd = fs::read_dir(folder).map_err(|e| DataError::io(folder, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| DataError::io(folder, e))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".txt") else {
            continue;
        };
        let parsed = stem
            .split_once('_')
            .and_then(|(i, r)| Some((i.parse::<u64>().ok()?, r.parse::<u8>().ok()?)));
        let Some((id, rating)) = parsed else {
            return Err(DataError::malformed(
                &path,
                "review file name is not <id>_<rating>.txt",
            ));
        };
        files.push(ReviewFile { path, id, rating });
    }
    files.sort_by_key(|f| f.id);
    if let Some(w) = files.windows(2).find(|w| w[0].id == w[1].id) {
        return Err(DataError::malformed(
            &w[1].path,
            format!("two reviews with id {} in one folder", w[1].id),
        ));
    }
    Ok(files)
}

/// `dir` when it holds `imdb.vocab` or `train/`, else `dir/aclImdb` when that exists.
fn aclimdb_dir(dir: &Path) -> PathBuf {
    let sub = dir.join(IMDB_DIR_NAME);
    if !dir.join("imdb.vocab").is_file() && !dir.join("train").is_dir() && sub.is_dir() {
        sub
    } else {
        dir.to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words of `text` under the module's rule.
    fn check(text: &str, want: &[&str]) {
        assert_eq!(words(text), want, "text {text:?}");
    }

    #[test]
    fn tokenizer_cases() {
        check(
            "Don't stop<br /><br />believing!",
            &["don't", "stop", "believing"],
        );
        check(
            "'Quoted' teachers' rock'n'roll",
            &["quoted", "teachers", "rock'n'roll"],
        );
        check(
            "It's 10/10 -- a must-see",
            &["it's", "10", "10", "a", "must", "see"],
        );
        check("ÉLAN café", &["élan", "café"]);
        check("a<br/>b<br>c", &["a", "b", "c"]);
        check("'' ' x'", &["x"]);
        check("", &[]);
        check("end's", &["end's"]);
    }

    #[test]
    fn ids_truncate_and_pad() {
        let tok = Tokenizer::Vocab(Vocab::from_words(["the", "movie", "don't"]));
        assert_eq!(tok.num_ids(), 5);
        let (ids, used) = tok.encode("The MOVIE, don't; zebra!", 6).unwrap();
        assert_eq!((ids, used), (vec![2, 3, 4, 1, 0, 0], 4));
        let (ids, used) = tok.encode("the the the the", 2).unwrap();
        assert_eq!((ids, used), (vec![2, 2], 2));
        assert!(matches!(
            tok.encode("x", 0),
            Err(DataError::InvalidArgument {
                name: "max_len",
                ..
            })
        ));
        let bytes = Tokenizer::Bytes;
        assert_eq!(bytes.num_ids(), 258);
        let (ids, used) = bytes.encode("Ab<br />é", 8).unwrap();
        assert_eq!(used, 5);
        assert_eq!(
            ids,
            vec![65 + 2, 98 + 2, 32 + 2, 0xC3 + 2, 0xA9 + 2, 0, 0, 0]
        );
    }

    #[test]
    fn vocab_is_the_first_k_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("imdb.vocab");
        fs::write(&path, "the\nand\na\nof\nto\n").unwrap();
        let v = Vocab::from_file(&path, 3).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!((v.id("the"), v.id("and"), v.id("a")), (2, 3, 4));
        assert_eq!((v.id("of"), v.id("to")), (UNK_ID, UNK_ID));
        assert_eq!((v.word(4), v.word(5), v.word(0)), (Some("a"), None, None));
        for bad in [0, 6] {
            let err = Vocab::from_file(&path, bad).unwrap_err();
            assert!(err.to_string().contains("must be in 1..=5"), "{err}");
        }
        assert_eq!(Vocab::from_words(["x", "x"]).id("x"), 2);
    }

    #[test]
    fn load_orders_by_label_and_id() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(IMDB_DIR_NAME);
        fs::create_dir_all(dir.join("train/pos")).unwrap();
        fs::create_dir_all(dir.join("train/neg")).unwrap();
        fs::write(dir.join("imdb.vocab"), "good\nbad\n").unwrap();
        for (rel, text) in [
            ("train/pos/10_9.txt", "good good"),
            ("train/pos/2_7.txt", "good"),
            ("train/neg/5_1.txt", "bad<br />worse"),
            ("train/neg/11_3.txt", "bad"),
            ("train/neg/30_4.txt", "bad bad bad"),
        ] {
            fs::write(dir.join(rel), text).unwrap();
        }
        let ds = Imdb::load(tmp.path(), Split::Train, 2, 2).unwrap();
        assert_eq!((ds.n, ds.max_len, ds.num_ids), (5, 2, 4));
        assert_eq!(ds.labels, vec![0, 1, 0, 1, 0]);
        assert_eq!(ds.ratings, vec![1, 7, 3, 9, 4]);
        assert_eq!(ds.tokens, vec![3, 1, 2, 0, 3, 0, 2, 2, 3, 3]);
        assert_eq!(ds.lengths, vec![2, 1, 1, 2, 2]);
        assert_eq!(ds.row(1), Some(&[2, 0][..]));
        assert_eq!(ds.subset(2).unwrap().tokens, vec![3, 1, 2, 0]);
        assert!(ds.subset(6).is_err());

        let err = Imdb::load(&dir, Split::Test, 2, 2).unwrap_err();
        assert!(err.to_string().contains("cargo xtask data"), "{err}");
        fs::write(dir.join("train/pos/oops.txt"), "x").unwrap();
        let err = Imdb::load(&dir, Split::Train, 2, 2).unwrap_err();
        assert!(err.to_string().contains("<id>_<rating>.txt"), "{err}");
    }
}
