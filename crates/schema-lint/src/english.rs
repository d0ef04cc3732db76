//! The singular of an English plural, for naming rules: a table of `identities` is referenced by
//! `identity_id`, one of `addresses` by `address_id`, one of `people` by `person_id`.
//!
//! Only the last word of a `snake_case` name changes (`api_keys` → `api_key`). The rules below
//! cover regular plurals (`-s`, `-es` after a sibilant, `-ies`, `-ves`), the irregular and Latin
//! plurals a schema meets, and words whose singular already ends in `s`; a word they do not
//! know loses a final `s`, as before.

/// Irregular plurals, and plurals the suffix rules would get wrong.
const IRREGULAR: &[(&str, &str)] = &[
    ("people", "person"),
    ("children", "child"),
    ("men", "man"),
    ("women", "woman"),
    ("mice", "mouse"),
    ("geese", "goose"),
    ("teeth", "tooth"),
    ("feet", "foot"),
    ("indices", "index"),
    ("matrices", "matrix"),
    ("vertices", "vertex"),
    ("appendices", "appendix"),
    ("analyses", "analysis"),
    ("crises", "crisis"),
    ("diagnoses", "diagnosis"),
    ("hypotheses", "hypothesis"),
    ("theses", "thesis"),
    ("syntheses", "synthesis"),
    ("criteria", "criterion"),
    ("phenomena", "phenomenon"),
    ("radii", "radius"),
    ("corpora", "corpus"),
    ("leaves", "leaf"),
    ("knives", "knife"),
    ("lives", "life"),
    ("wives", "wife"),
    ("halves", "half"),
    ("shelves", "shelf"),
    ("wolves", "wolf"),
    ("thieves", "thief"),
    ("movies", "movie"),
    ("cookies", "cookie"),
    ("pies", "pie"),
    ("ties", "tie"),
    ("lies", "lie"),
    ("statuses", "status"),
    ("buses", "bus"),
    ("campuses", "campus"),
    ("bonuses", "bonus"),
    ("viruses", "virus"),
    ("censuses", "census"),
    ("aliases", "alias"),
    ("canvases", "canvas"),
    ("gases", "gas"),
    ("quizzes", "quiz"),
    ("caches", "cache"),
    ("niches", "niche"),
    ("headaches", "headache"),
];

/// Words that are the same in both numbers, or already singular though they end in `s`.
const UNCHANGED: &[&str] = &[
    "data", "media", "metadata", "series", "species", "news", "status", "address", "class",
    "process", "access", "analysis", "basis", "bus", "campus", "alias", "canvas", "gas",
    "settings",
];

/// The singular of `name`, changing its last `_`-separated word.
pub(crate) fn singular(name: &str) -> String {
    let (head, last) = match name.rsplit_once('_') {
        Some((head, last)) => (Some(head), last),
        None => (None, name),
    };
    let word = singular_word(last);
    match head {
        Some(head) => format!("{head}_{word}"),
        None => word,
    }
}

fn singular_word(word: &str) -> String {
    if let Some((_, singular)) = IRREGULAR.iter().find(|(plural, _)| *plural == word) {
        return (*singular).to_string();
    }
    if UNCHANGED.contains(&word) || word.ends_with("ss") || word.len() <= 2 {
        return word.to_string();
    }
    let stem = |suffix: &str| &word[..word.len() - suffix.len()];
    if word.ends_with("ies") && word.len() > 4 {
        return format!("{}y", stem("ies"));
    }
    for sibilant in ["sses", "xes", "zzes", "ches", "shes"] {
        if word.ends_with(sibilant) {
            return stem("es").to_string();
        }
    }
    match word.strip_suffix('s') {
        Some(stem) if !word.ends_with("us") && !word.ends_with("is") => stem.to_string(),
        _ => word.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::singular;

    #[test]
    fn plurals_a_schema_meets_become_their_singular() {
        for (plural, expected) in [
            ("organizations", "organization"),
            ("api_keys", "api_key"),
            ("identities", "identity"),
            ("categories", "category"),
            ("addresses", "address"),
            ("boxes", "box"),
            ("batches", "batch"),
            ("hashes", "hash"),
            ("statuses", "status"),
            ("order_statuses", "order_status"),
            ("people", "person"),
            ("children", "child"),
            ("indices", "index"),
            ("analyses", "analysis"),
            ("leaves", "leaf"),
            ("archives", "archive"),
            ("movies", "movie"),
            ("responses", "response"),
            ("databases", "database"),
            ("invoice_lines", "invoice_line"),
            ("usage_events", "usage_event"),
            ("audit_log", "audit_log"),
            ("metadata", "metadata"),
            ("series", "series"),
            ("access", "access"),
            ("days", "day"),
            ("keys", "key"),
            ("sizes", "size"),
            ("caches", "cache"),
            ("branches", "branch"),
            ("taxes", "tax"),
            ("causes", "cause"),
            ("bonuses", "bonus"),
        ] {
            assert_eq!(singular(plural), expected, "{plural}");
        }
    }
}
