//! The page's words, one table per language ([`en`], [`zh`]): each lesson's title and
//! caption, by slug, and the page's own words, by key. The code names a key; the table for
//! the chosen language says it. Plain `&'static str` tables: they cost the bundle only their
//! bytes.

use std::sync::atomic::{AtomicBool, Ordering};

pub mod en;
pub mod zh;

/// Whether the page speaks Chinese: set once, when the page starts (the switch reloads it).
/// A flag rather than a value passed down, so the panels' code asks [`tr`] and changes little.
static CHINESE: AtomicBool = AtomicBool::new(false);

/// Makes [`tr`] answer in `words`' language.
pub fn set_language(words: &Words) {
    CHINESE.store(words.code == "zh", Ordering::Relaxed);
}

/// The page's words `en` in the page's language: the Chinese of [`zh::PAGE`], or `en`
/// itself (in English, or if the table lacks it).
pub fn tr(en: &str) -> &str {
    if !CHINESE.load(Ordering::Relaxed) {
        return en;
    }
    zh::PAGE.iter().find(|(e, _)| *e == en).map_or(en, |(_, z)| z)
}

/// One language's words.
#[derive(Debug)]
pub struct Words {
    /// Its code, as in `<html lang>` and the stored choice.
    pub code: &'static str,
    /// `(slug, title, caption)`, in the order of `protocol::lessons::LESSONS`.
    pub lessons: [(&'static str, &'static str, &'static str); 12],
    /// `(key, text)` for the page.
    pub page: &'static [(&'static str, &'static str)],
}

impl Words {
    /// The words for `code` (`zh`, `zh-CN`, `en-US`, …): Chinese for any `zh`, else English.
    pub fn for_language(code: &str) -> &'static Words {
        if code.to_ascii_lowercase().starts_with("zh") { &zh::WORDS } else { &en::WORDS }
    }

    /// The other language, for the switch.
    pub fn other(&self) -> &'static Words {
        if self.code == "zh" { &en::WORDS } else { &zh::WORDS }
    }

    /// The page's text for `key`, or nothing if the table lacks it.
    pub fn get(&self, key: &str) -> &'static str {
        self.page.iter().find(|(k, _)| *k == key).map_or("", |(_, t)| t)
    }

    /// A lesson's title and caption.
    pub fn lesson(&self, slug: &str) -> (&'static str, &'static str) {
        self.lessons.iter().find(|(s, ..)| *s == slug).map_or(("", ""), |(_, t, c)| (t, c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::lessons::LESSONS;

    #[test]
    fn both_tables_have_every_lesson_and_key_in_order() {
        for words in [&en::WORDS, &zh::WORDS] {
            let slugs: Vec<_> = words.lessons.iter().map(|(s, ..)| *s).collect();
            let expected: Vec<_> = LESSONS.iter().map(|l| l.slug).collect();
            assert_eq!(slugs, expected, "{}", words.code);
        }
        let keys = |w: &Words| w.page.iter().map(|(k, _)| *k).collect::<Vec<_>>();
        assert_eq!(keys(&en::WORDS), keys(&zh::WORDS));
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
        set_language(&zh::WORDS);
        assert_eq!(tr("Sent"), "已发送");
        assert_eq!(tr("ECONNREFUSED"), "ECONNREFUSED", "names stay");
        set_language(&en::WORDS);
        assert_eq!(tr("Sent"), "Sent");
        let mut seen = Vec::new();
        for (en, _) in zh::PAGE {
            assert!(!seen.contains(en), "{en} twice");
            seen.push(*en);
        }
    }
}
