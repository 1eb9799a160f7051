//! The page's words, one table per language: English in [`en`] (in the bundle, as the page's
//! HTML is English too), Simplified Chinese in `web/lang/zh.txt`, a data file the page reads
//! only when it speaks Chinese, so the English page's bundle never carries it. Each table has
//! every lesson's title and caption, by slug, and the page's own words by key: among them
//! every sentence the model and the diagram say (the event log, the arrows' labels, the marks,
//! the details), asked of [`word`] and [`fill`]. The Chinese one also has, by their English,
//! the words of the static page and of the panels, asked of [`tr`].
//!
//! Plain `&'static str` tables and a line-based file: no serde, no generic code.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

pub mod en;

/// One language: its code, and where its words are.
#[derive(Debug)]
pub struct Words {
    /// Its code, as in `<html lang>` and the stored choice.
    pub code: &'static str,
    /// `(slug, title, caption)`, in the order of `protocol::lessons::LESSONS`. Empty for a
    /// language read from a file: its words are in [`Loaded`].
    pub lessons: [(&'static str, &'static str, &'static str); 12],
    /// `(key, text)` for the page's code words.
    pub page: &'static [(&'static str, &'static str)],
}

/// The Chinese words' table, filled from `web/lang/zh.txt`.
pub const ZH: Words = Words { code: "zh", lessons: [("", "", ""); 12], page: &[] };

/// Where the Chinese table is served, next to the page.
pub const ZH_URL: &str = "web/lang/zh.txt";

/// A language's words read from its file.
#[derive(Debug, Default)]
pub struct Loaded {
    /// `(slug, title, caption)` from the `=SLUG` lines.
    lessons: Vec<(String, String, String)>,
    /// `(key or English, text)` from every other line.
    page: Vec<(String, String)>,
}

impl Loaded {
    /// Reads `key<TAB>text` and `=slug<TAB>title<TAB>caption` lines; `#` starts a comment.
    pub fn parse(file: &str) -> Self {
        let mut words = Loaded::default();
        for line in file.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let mut fields = line.split('\t');
            let (Some(key), Some(text)) = (fields.next(), fields.next()) else { continue };
            match (key.strip_prefix('='), fields.next()) {
                (Some(slug), Some(caption)) => {
                    words.lessons.push((slug.to_owned(), text.to_owned(), caption.to_owned()));
                }
                _ => words.page.push((key.to_owned(), text.to_owned())),
            }
        }
        words
    }

    fn page(&self, key: &str) -> Option<&str> {
        self.page.iter().find(|(k, _)| k == key).map(|(_, t)| t.as_str())
    }
}

/// The Chinese words, once read.
static CHINESE_WORDS: OnceLock<Loaded> = OnceLock::new();
/// Whether the page speaks Chinese: set once, when the page starts (the switch reloads it).
/// A flag rather than a value passed down, so the panels' code asks [`tr`] and changes little.
#[cfg(not(test))]
static CHINESE: AtomicBool = AtomicBool::new(false);

#[cfg(test)]
thread_local! {
    /// Each test runs on a thread of its own: one that sets Chinese leaves the others in English.
    static CHINESE: AtomicBool = const { AtomicBool::new(false) };
}

fn speaks_chinese() -> bool {
    #[cfg(not(test))]
    return CHINESE.load(Ordering::Relaxed);
    #[cfg(test)]
    return CHINESE.with(|c| c.load(Ordering::Relaxed));
}

/// Keeps the Chinese words read from [`ZH_URL`].
pub fn load_chinese(file: &str) {
    let _ = CHINESE_WORDS.set(Loaded::parse(file));
}

/// Whether the Chinese words have been read.
pub fn chinese_loaded() -> bool {
    CHINESE_WORDS.get().is_some()
}

/// Makes [`tr`] answer in `words`' language.
pub fn set_language(words: &Words) {
    let zh = words.code == "zh";
    #[cfg(not(test))]
    CHINESE.store(zh, Ordering::Relaxed);
    #[cfg(test)]
    CHINESE.with(|c| c.store(zh, Ordering::Relaxed));
}

fn chinese() -> Option<&'static Loaded> {
    speaks_chinese().then(|| CHINESE_WORDS.get()).flatten()
}

/// The page's words `en` in the page's language: the Chinese table's, or `en` itself (in
/// English, or if the table lacks it).
pub fn tr(en: &str) -> &str {
    chinese().and_then(|zh| zh.page(en)).unwrap_or(en)
}

/// The words the model and the diagram say for `key` (`log-open`, `fate-lost`, …), in the
/// page's language: the Chinese table's, else [`en::WORDS`]'s.
pub fn word(key: &str) -> &'static str {
    chinese().and_then(|zh| zh.page(key)).unwrap_or_else(|| en::WORDS.get(key))
}

/// [`word`]`(key)` with `{0}`, `{1}`, … replaced by `args`, so that each language puts them
/// where its sentences need them: `{0} → {1}: {2} ({3} B)`.
pub fn fill(key: &str, args: &[&dyn std::fmt::Display]) -> String {
    use std::fmt::Write;
    let template = word(key);
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        let digit = rest.as_bytes().get(at + 1).filter(|d| d.is_ascii_digit());
        match digit.zip(rest.as_bytes().get(at + 2)) {
            Some((d, b'}')) => {
                if let Some(arg) = args.get(usize::from(d - b'0')) {
                    let _ = write!(out, "{arg}");
                }
                rest = &rest[at + 3..];
            }
            _ => {
                out.push('{');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

impl Words {
    /// The words for `code` (`zh`, `zh-CN`, `en-US`, …): Chinese for any `zh`, else English.
    pub fn for_language(code: &str) -> &'static Words {
        if code.to_ascii_lowercase().starts_with("zh") { &ZH } else { &en::WORDS }
    }

    /// The other language, for the switch.
    pub fn other(&self) -> &'static Words {
        if self.code == "zh" { &en::WORDS } else { &ZH }
    }

    /// The page's text for `key`: this language's, else the English.
    pub fn get(&self, key: &str) -> &'static str {
        let loaded = (self.code == "zh").then(|| CHINESE_WORDS.get()).flatten();
        loaded
            .and_then(|zh| zh.page(key))
            .or_else(|| en::WORDS.page.iter().find(|(k, _)| *k == key).map(|(_, t)| *t))
            .unwrap_or("")
    }

    /// A lesson's title and caption: this language's, else the English.
    pub fn lesson(&self, slug: &str) -> (&'static str, &'static str) {
        let loaded = (self.code == "zh").then(|| CHINESE_WORDS.get()).flatten();
        let found = loaded.and_then(|zh| zh.lessons.iter().find(|(s, ..)| s == slug));
        match found {
            Some((_, title, caption)) => (title.as_str(), caption.as_str()),
            None => en::WORDS.lessons.iter().find(|(s, ..)| *s == slug).map_or(("", ""), |(_, t, c)| (t, c)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::lessons::LESSONS;

    const ZH_FILE: &str = include_str!("../../../web/lang/zh.txt");

    #[test]
    fn both_tables_have_every_lesson_and_key_in_order() {
        let slugs: Vec<_> = en::WORDS.lessons.iter().map(|(s, ..)| *s).collect();
        let expected: Vec<_> = LESSONS.iter().map(|l| l.slug).collect();
        assert_eq!(slugs, expected);
        let zh = Loaded::parse(ZH_FILE);
        let zh_slugs: Vec<_> = zh.lessons.iter().map(|(s, ..)| s.as_str()).collect();
        assert_eq!(zh_slugs, expected);
        for (key, _) in en::WORDS.page {
            assert!(zh.page(key).is_some_and(|t| !t.is_empty()), "zh.txt lacks {key}");
        }
        let mut seen = Vec::new();
        for (en, _) in &zh.page {
            assert!(!seen.contains(&en), "{en} twice in zh.txt");
            seen.push(en);
        }
    }

    /// The `{n}` a template fills, sorted: both languages must fill the same ones.
    fn holes(template: &str) -> Vec<u8> {
        let mut holes: Vec<u8> = template
            .as_bytes()
            .windows(3)
            .filter(|w| w[0] == b'{' && w[1].is_ascii_digit() && w[2] == b'}')
            .map(|w| w[1])
            .collect();
        holes.sort_unstable();
        holes
    }

    #[test]
    fn both_tables_fill_the_same_holes() {
        let zh = Loaded::parse(ZH_FILE);
        for (key, en) in en::WORDS.page {
            let Some(zh) = zh.page(key) else { continue };
            assert_eq!(holes(en), holes(zh), "{key}: {en:?} and {zh:?} fill different holes");
        }
    }

    /// Every `.rs` file of the crate, without its tests: the code the page runs.
    fn sources() -> Vec<(String, String)> {
        fn walk(dir: &std::path::Path, out: &mut Vec<(String, String)>) {
            let mut entries: Vec<_> = std::fs::read_dir(dir).expect("src/ is readable").flatten().collect();
            entries.sort_by_key(|e| e.path());
            for entry in entries {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("tests.rs") {
                    let text = std::fs::read_to_string(&path).expect("a source file");
                    let code = text.split("#[cfg(test)]").next().unwrap_or_default().to_owned();
                    out.push((path.display().to_string(), code));
                }
            }
        }
        let mut out = Vec::new();
        walk(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
        out
    }

    /// The string literals right after each `call` in `source`: `word("key")` gives `key`, and
    /// `word(match x { A => "key", … })` every string in the arms.
    fn asked<'a>(source: &'a str, call: &str) -> Vec<&'a str> {
        let mut keys = Vec::new();
        for (at, _) in source.match_indices(call) {
            let before = source[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let rest = &source[at + call.len()..];
            if let Some(arms) = rest.strip_prefix("match ") {
                let arms = &arms[..arms.find("})").unwrap_or(0)];
                keys.extend(arms.split('"').skip(1).step_by(2));
            } else if let Some(literal) = rest.strip_prefix('"') {
                keys.extend(literal.split('"').next());
            } else if let Some(choice) = rest.strip_prefix("if ") {
                // `tr(if x { "A" } else { "B" })`
                let choice = &choice[..choice.find("})").unwrap_or(0)];
                keys.extend(choice.split('"').skip(1).step_by(2));
            }
        }
        keys
    }

    /// Every key the page's code asks [`word`] and [`fill`] for is in both tables, with the
    /// same holes, and every English words it asks [`tr`] for has its Chinese: so nothing the
    /// code says stays English on the Chinese page.
    #[test]
    fn every_word_the_code_asks_for_is_in_both_tables() {
        let zh = Loaded::parse(ZH_FILE);
        let (mut keys, mut english) = (0, 0);
        for (file, source) in sources() {
            for key in ["word(", "fill("].iter().flat_map(|call| asked(&source, call)) {
                keys += 1;
                let en = en::WORDS.get(key);
                assert!(!en.is_empty(), "{file}: en.rs lacks {key:?}");
                let zh = zh.page(key).unwrap_or_else(|| panic!("{file}: zh.txt lacks {key:?}"));
                assert_eq!(holes(en), holes(zh), "{file}: {key}: {en:?} and {zh:?} fill different holes");
            }
            for words in asked(&source, "tr(") {
                english += 1;
                assert!(zh.page(words).is_some(), "{file}: zh.txt lacks {words:?}");
            }
        }
        assert!(keys > 100, "only {keys} keys found: is the scan still reading the calls?");
        assert!(english > 10, "only {english} tr() calls found: is the scan still reading them?");
    }

    #[test]
    fn fill_puts_each_value_where_the_language_wants_it() {
        set_language(&en::WORDS);
        assert_eq!(fill("mark-retry", &[&2, &200]), "retry 2 after 200 ms");
        assert_eq!(fill("log-dg", &[&"a", &"echo", &"\"hi\"", &2]), "a → echo: \"hi\" (2 B)");
        load_chinese(ZH_FILE);
        set_language(&ZH);
        // The Chinese sentence reads the values in its own order.
        assert_eq!(fill("log-server-recv", &[&"echo", &"\"hi\"", &2, &"a"]), "echo 从 a 读到 \"hi\"（2 B）");
        assert_eq!(word("way-there"), "在去程上");
        set_language(&en::WORDS);
    }

    #[test]
    fn the_language_comes_from_its_code() {
        assert_eq!(Words::for_language("zh-CN").code, "zh");
        assert_eq!(Words::for_language("en-GB").code, "en");
        assert_eq!(Words::for_language("fr").code, "en");
        assert_eq!(Words::for_language("zh").other().code, "en");
    }

    #[test]
    fn tr_answers_in_the_page_language() {
        load_chinese(ZH_FILE);
        set_language(&ZH);
        assert_eq!(tr("Sent"), "已发送");
        assert_eq!(tr("ECONNREFUSED"), "ECONNREFUSED", "names stay");
        assert_eq!(ZH.lesson("truncation").0, "截断");
        assert_eq!(ZH.get("replay"), "重放");
        set_language(&en::WORDS);
        assert_eq!(tr("Sent"), "Sent");
        assert_eq!(en::WORDS.lesson("truncation").0, "Truncation");
    }
}
