//! Architecture tests in the style of rust-analyzer's `tidy.rs`: each rule written in
//! ARCHITECTURE.md is checked here, so a change that breaks one fails `cargo test`.
//!
//! - Crate dependencies point down the layer order (from `cargo metadata`), and only the
//!   trainer and the crates above it know candle.
//! - The math crates touch no file; `lrmf-train` touches files only in the modules that own
//!   its run folder, its config and its data.
//! - Every public function of `lrmf-privacy` that returns a sensitivity, a noise multiplier or
//!   an ε carries a `# Privacy contract` section.
//! - Files are committed (renamed into place) only by `lrmf-io`, so every write has its
//!   durability; methods are named as string literals only by their table (`Method`).
//! - No non-test function is longer than 80 lines (`MAX_FN_LINES`).

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// Layer of each workspace crate: a crate may depend only on crates of a lower layer.
    /// candle sits at layer 3, so only the trainer (4) and the crates above it can use it.
    const LAYERS: [(&str, u32); 14] = [
        ("lrmf-io", 0),
        ("lrmf-schedule", 0),
        ("lrmf-linalg", 0),
        ("lrmf-data", 1),
        ("lrmf-workload", 1),
        ("lrmf-privacy", 2),
        ("lrmf-factor", 3),
        ("lrmf-noise", 3),
        ("lrmf-train", 4),
        ("lrmf-cli", 5),
        ("xtask", 6),
        ("lrmf-benches", 6),
        ("candle-core", 3),
        ("candle-nn", 3),
    ];

    /// Crates that must stay pure: no file IO outside their tests.
    const MATH: [&str; 6] = [
        "lrmf-schedule",
        "lrmf-linalg",
        "lrmf-workload",
        "lrmf-privacy",
        "lrmf-factor",
        "lrmf-noise",
    ];

    /// The modules of `lrmf-train` allowed to touch files (ARCHITECTURE.md, Invariants): the
    /// run folder's store and the files in it, the config (and its schedule file); the training
    /// loop goes through them.
    const TRAIN_FILES: [&str; 5] = [
        "store.rs",
        "checkpoint.rs",
        "config.rs",
        "metrics.rs",
        "release.rs",
    ];

    /// The checkout under test, found at run time (a compile-time path can name another
    /// checkout that shares the target directory: `lrmf_data::setup::run_time_workspace_root`).
    fn root() -> PathBuf {
        crate::run::workspace_root()
    }

    fn layer(name: &str) -> Option<u32> {
        LAYERS.iter().find(|(n, _)| *n == name).map(|(_, l)| *l)
    }

    /// The `.rs` files under `dir`, recursively.
    fn sources(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(sources(&p));
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
        out
    }

    /// The text of a source file up to its `#[cfg(test)]` module (tests may do anything); empty
    /// for a `tests.rs` file (a test module declared `#[cfg(test)] mod tests;`).
    fn non_test(path: &Path) -> String {
        if path.file_name().is_some_and(|n| n == "tests.rs") {
            return String::new();
        }
        let text = std::fs::read_to_string(path).unwrap();
        match text.find("#[cfg(test)]") {
            Some(i) => text[..i].to_string(),
            None => text,
        }
    }

    /// Violations of the file rule in `text`, as `path:line`.
    fn file_io(path: &Path, text: &str) -> Vec<String> {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim_start().starts_with("//"))
            .filter(|(_, l)| l.contains("std::fs") || l.contains("fs::") || l.contains("File::"))
            .map(|(i, _)| format!("{}:{}", path.display(), i + 1))
            .collect()
    }

    #[test]
    fn crate_dependencies_point_down_the_layers() {
        let out = std::process::Command::new(env!("CARGO"))
            .args([
                "metadata",
                "--format-version",
                "1",
                "--no-deps",
                "--offline",
            ])
            .current_dir(root())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut bad = Vec::new();
        for pkg in meta["packages"].as_array().unwrap() {
            let name = pkg["name"].as_str().unwrap();
            let own = layer(name).unwrap_or_else(|| panic!("{name} has no layer in LAYERS"));
            for dep in pkg["dependencies"].as_array().unwrap() {
                if !dep["kind"].is_null() {
                    continue; // dev- and build-dependencies may reach anywhere
                }
                let d = dep["name"].as_str().unwrap();
                if let Some(l) = layer(d)
                    && l >= own
                {
                    bad.push(format!("{name} (layer {own}) depends on {d} (layer {l})"));
                }
            }
        }
        assert!(
            bad.is_empty(),
            "dependencies against the layer order:\n{}",
            bad.join("\n")
        );
    }

    #[test]
    fn files_are_touched_only_where_allowed() {
        let mut bad = Vec::new();
        for krate in MATH {
            for f in sources(&root().join("crates").join(krate).join("src")) {
                bad.extend(file_io(&f, &non_test(&f)));
            }
        }
        for f in sources(&root().join("crates/lrmf-train/src")) {
            let name = f.file_name().unwrap().to_str().unwrap();
            if !TRAIN_FILES.contains(&name) {
                bad.extend(file_io(&f, &non_test(&f)));
            }
        }
        assert!(
            bad.is_empty(),
            "file IO outside the allowed modules:\n{}",
            bad.join("\n")
        );
        // The rule catches a violation.
        assert_eq!(
            file_io(Path::new("x.rs"), "let t = std::fs::read(p);").len(),
            1
        );
    }

    /// Lines of `text` that write `unsafe` code or lift the `unsafe_code` lint, as `path:line`.
    fn unsafe_lines(path: &Path, text: &str) -> Vec<String> {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim_start().starts_with("//"))
            .filter(|(_, l)| {
                l.contains("unsafe {") || l.contains("unsafe fn") || l.contains("(unsafe_code)")
            })
            .map(|(i, _)| format!("{}:{}", path.display(), i + 1))
            .collect()
    }

    #[test]
    fn unsafe_code_lives_only_in_the_audited_native_module() {
        let native = root().join("crates/lrmf-train/src/model/native");
        let mut files = sources(&root().join("crates"));
        files.extend(sources(&root().join("xtask/src")));
        files.extend(sources(&root().join("benches")));
        let bad: Vec<String> = files
            .iter()
            .filter(|f| !f.starts_with(&native))
            .flat_map(|f| unsafe_lines(f, &non_test(f)))
            .collect();
        assert!(
            bad.is_empty(),
            "unsafe code outside crates/lrmf-train/src/model/native:\n{}",
            bad.join("\n")
        );
        // The rule catches a violation.
        assert_eq!(
            unsafe_lines(
                Path::new("x.rs"),
                "    unsafe { std::hint::unreachable_unchecked() }"
            )
            .len(),
            1
        );
    }

    /// `pub fn` items of `text` whose signature returns a privacy number, without a
    /// `# Privacy contract` section in their doc comment.
    fn missing_contracts(path: &Path, text: &str) -> Vec<String> {
        let lines: Vec<&str> = text.lines().collect();
        let mut bad = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            let t = l.trim_start();
            if !t.starts_with("pub fn ") {
                continue;
            }
            // The signature up to its body.
            let sig: String = lines[i..]
                .iter()
                .take_while(|s| !s.contains('{') || s.trim_start().starts_with("pub fn"))
                .chain(lines[i..].iter().find(|s| s.contains('{')))
                .copied()
                .collect::<Vec<_>>()
                .join(" ");
            let ret = sig
                .split("->")
                .nth(1)
                .unwrap_or("")
                .replace("SensitivityError", "");
            let name = t["pub fn ".len()..].split(['(', '<']).next().unwrap_or("");
            let number_name = [
                "sensitivity",
                "calibrate",
                "epsilon",
                "noise_multiplier",
                "bound",
            ]
            .iter()
            .any(|k| name.contains(k));
            let privacy = ret.contains("Sensitivity")
                || ret.contains("PrivacyReport")
                || (number_name && ret.contains("f64") && !name.starts_with("check_"));
            if !privacy {
                continue;
            }
            let doc: Vec<&str> = lines[..i]
                .iter()
                .rev()
                .take_while(|s| {
                    let s = s.trim_start();
                    s.starts_with("///") || s.starts_with("#[")
                })
                .copied()
                .collect();
            if !doc.iter().any(|d| d.contains("# Privacy contract")) {
                bad.push(format!("{}:{}: {}", path.display(), i + 1, t));
            }
        }
        bad
    }

    #[test]
    fn privacy_numbers_carry_a_privacy_contract() {
        let mut bad = Vec::new();
        for f in sources(&root().join("crates/lrmf-privacy/src")) {
            bad.extend(missing_contracts(&f, &non_test(&f)));
        }
        assert!(
            bad.is_empty(),
            "public functions returning a privacy number without `# Privacy contract`:\n{}",
            bad.join("\n")
        );
        // The rule catches a violation and accepts a documented function.
        let p = Path::new("x.rs");
        assert_eq!(
            missing_contracts(p, "/// Doc.\npub fn sensitivity(c: &C) -> f64 {").len(),
            1
        );
        let ok = "/// Doc.\n///\n/// # Privacy contract\n/// Never below.\npub fn sensitivity(c: &C) -> f64 {";
        assert!(missing_contracts(p, ok).is_empty());
    }

    /// The violations of `rule` in the non-test code of every crate's `src/` (and `xtask/src`
    /// with `xtask`), except in the files of `allowed` (paths from the repository root).
    fn scan(rule: fn(&Path, &str) -> Vec<String>, allowed: &[&str], xtask: bool) -> Vec<String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("crates"))
            .unwrap()
            .flat_map(|e| sources(&e.unwrap().path().join("src")))
            .collect();
        if xtask {
            files.extend(sources(&root().join("xtask/src")));
        }
        let mut bad = Vec::new();
        for f in files {
            let rel = f
                .strip_prefix(root())
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if !allowed.contains(&rel.as_str()) {
                bad.extend(rule(&f, &non_test(&f)));
            }
        }
        bad
    }

    /// The longest a non-test function may be, from its `fn` line to its closing brace.
    const MAX_FN_LINES: usize = 80;

    /// Functions of `text` longer than [`MAX_FN_LINES`], as `path:line: name (lines)`. A
    /// function ends at the first later line indented like its `fn` line that is `}`; a line
    /// at that indentation starting otherwise (bar a signature's `)`, `where` or `{`) means the
    /// `fn` had no body there (a trait method's declaration), and one-line functions are skipped.
    fn long_functions(path: &Path, text: &str) -> Vec<String> {
        let lines: Vec<&str> = text.lines().collect();
        let mut out = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let body = line.trim_start();
            let indent = &line[..line.len() - body.len()];
            let Some(at) = body.find("fn ") else { continue };
            let head = &body[..at];
            let is_fn = head.split_whitespace().all(|w| {
                matches!(w, "pub" | "const" | "unsafe" | "async" | "extern" | "\"C\"")
                    || w.starts_with("pub(")
            });
            if !is_fn || body.ends_with('}') || body.ends_with(';') {
                continue;
            }
            let end = lines[i + 1..].iter().position(|l| {
                let rest = l.strip_prefix(indent).unwrap_or("");
                let continues = [")", "where", "{"].iter().any(|p| rest.starts_with(p));
                !rest.is_empty() && !rest.starts_with(char::is_whitespace) && !continues
            });
            let Some(end) = end else { continue };
            let closing = lines[i + 1 + end].strip_prefix(indent) == Some("}");
            if closing && end + 2 > MAX_FN_LINES {
                let name = body[at + 3..].split(['(', '<']).next().unwrap_or("");
                out.push(format!(
                    "{}:{}: {name} ({} lines)",
                    path.display(),
                    i + 1,
                    end + 2
                ));
            }
        }
        out
    }

    #[test]
    fn functions_stay_short() {
        let bad = scan(long_functions, &[], true);
        assert!(
            bad.is_empty(),
            "functions over {MAX_FN_LINES} lines (split them by concern):\n{}",
            bad.join("\n")
        );
        let p = Path::new("x.rs");
        let long = |n: usize| {
            format!(
                "    pub fn f(\n        x: u8,\n    ) {{\n{}    }}\n",
                "        x;\n".repeat(n)
            )
        };
        assert_eq!(long_functions(p, &long(MAX_FN_LINES - 4)).len(), 0);
        assert_eq!(long_functions(p, &long(MAX_FN_LINES - 3)).len(), 1);
        assert!(long_functions(p, "    fn start(&mut self) {}\n    fn f(&self);\n}\n").is_empty());
    }

    /// Lines of `text` that commit a file by renaming it (the last step of an atomic write).
    fn renames(path: &Path, text: &str) -> Vec<String> {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim_start().starts_with("//") && l.contains("rename("))
            .map(|(i, _)| format!("{}:{}", path.display(), i + 1))
            .collect()
    }

    #[test]
    fn atomic_writes_go_through_lrmf_io() {
        // The data set-up renames a finished *folder* into place (then fsyncs its parent).
        const ALLOWED: [&str; 2] = ["crates/lrmf-io/src/lib.rs", "crates/lrmf-data/src/setup.rs"];
        let bad = scan(renames, &ALLOWED, true);
        assert!(
            bad.is_empty(),
            "files committed by hand instead of lrmf_io::atomic_write / AtomicFile:\n{}",
            bad.join("\n")
        );
        assert_eq!(
            renames(Path::new("x.rs"), "std::fs::rename(&tmp, p)?;").len(),
            1
        );
    }

    /// Lines of `text` holding a method's command-line name as a string literal (comments are
    /// skipped): a method is named by `lrmf_factor::Method`, its table is `method.rs`.
    fn method_literals(path: &Path, text: &str) -> Vec<String> {
        let names = lrmf_factor::Method::ALL.map(|m| format!("\"{}\"", m.name()));
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim_start().starts_with("//"))
            .filter(|(_, l)| names.iter().any(|n| l.contains(n.as_str())))
            .map(|(i, l)| format!("{}:{}: {}", path.display(), i + 1, l.trim()))
            .collect()
    }

    #[test]
    fn methods_are_named_only_by_the_method_table() {
        // `identity` is also the name of the noise generator's form for C = I.
        const ALLOWED: [&str; 2] = [
            "crates/lrmf-factor/src/method.rs",
            "crates/lrmf-noise/src/generator/form.rs",
        ];
        let bad = scan(method_literals, &ALLOWED, true);
        assert!(
            bad.is_empty(),
            "method names as string literals (use lrmf_factor::Method):\n{}",
            bad.join("\n")
        );
        let p = Path::new("x.rs");
        assert_eq!(method_literals(p, "if m != \"identity\" {").len(), 1);
        assert!(method_literals(p, "if m != Method::Identity {").is_empty());
    }
}
