//! The documentation stands alone in a clone: every link of README.md and docs/ opens a
//! file of the repository or a public https page, and none points outside the clone.

use std::path::{Path, PathBuf};

fn markdown_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let mut files = vec![PathBuf::from("README.md"), PathBuf::from("ARCHITECTURE.md")];
    walk(Path::new("docs"), &mut files);
    files
}

/// The targets of `[text](target)` and `![alt](target)` links.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            let target = rest[..end].split_whitespace().next().unwrap_or_default();
            out.push(target.to_owned());
        }
    }
    out
}

#[test]
fn every_link_of_the_docs_opens_in_a_clone() {
    let mut broken = Vec::new();
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for word in ["../shared", "seeds/", "closing note"] {
            if text.contains(word) {
                broken.push(format!("{}: mentions `{word}`", file.display()));
            }
        }
        for target in links(&text) {
            if target.starts_with("https://") || target.starts_with('#') {
                continue;
            }
            if target.starts_with("http://") {
                broken.push(format!("{}: plain http link {target}", file.display()));
                continue;
            }
            let path = target.split('#').next().unwrap_or_default();
            let resolved = file.parent().unwrap().join(path);
            if !resolved.exists() {
                broken.push(format!("{}: {target} does not exist", file.display()));
            }
        }
    }
    assert!(broken.is_empty(), "{broken:#?}");
}

#[test]
fn the_readme_names_the_two_commands_and_the_toolchain() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    assert!(readme.contains("## The two commands"));
    assert!(readme.contains("cargo run"));
    assert!(readme.contains("cargo test"));
    assert!(readme.contains("cargo install --locked --path ."));
    let manifest = std::fs::read_to_string("Cargo.toml").unwrap();
    let msrv = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .expect("Cargo.toml declares rust-version")
        .trim_matches('"');
    assert!(
        readme.contains(&format!("Rust {msrv}")),
        "README names the minimum Rust version {msrv}"
    );
}
