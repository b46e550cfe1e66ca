//! The manifest golden files: each `tests/manifests/NAME.toml` sits next to
//! `NAME.json` (what it parses to) or `NAME.err` (the error it gives).
//! `WEFT_BLESS=1 cargo test manifests` rewrites them after a deliberate change.

use std::path::Path;
use weft_runtime::manifest::Manifest;

#[test]
fn manifests_match_their_golden_files() {
    let dir = weft_tests::root().join("tests").join("manifests");
    let bless = std::env::var_os("WEFT_BLESS").is_some();
    let mut checked = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    entries.sort();
    for toml in entries {
        let text = std::fs::read_to_string(&toml).unwrap();
        let name = Path::new(toml.file_name().unwrap());
        let (actual, golden) = match Manifest::from_str(&text, name) {
            Ok(manifest) => (
                serde_json::to_string_pretty(&manifest).unwrap() + "\n",
                toml.with_extension("json"),
            ),
            Err(e) => (e.to_string() + "\n", toml.with_extension("err")),
        };
        if bless {
            std::fs::write(&golden, &actual).unwrap();
        }
        let expected = std::fs::read_to_string(&golden).unwrap_or_else(|_| {
            panic!(
                "{} has no golden file {}; run with WEFT_BLESS=1 to write it",
                toml.display(),
                golden.display()
            )
        });
        assert_eq!(
            actual,
            expected,
            "{} differs from {}",
            toml.display(),
            golden.display()
        );
        checked += 1;
    }
    assert!(
        checked >= 8,
        "only {checked} golden manifests found in {}",
        dir.display()
    );
}
