//! The bad-declaration corpus through the real binary: every file exits
//! non-zero with field, rule and fix, and nothing panics.

use crate::support::{Sandbox, built, root};

#[test]
fn every_bad_declaration_is_rejected_with_field_rule_and_fix() {
    let s = Sandbox::new(&built().full);
    let dir = root().join("tests/corpus/bad");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    assert!(files.len() >= 40, "only {} bad declarations", files.len());
    for f in &files {
        let text = String::from_utf8_lossy(&std::fs::read(f).expect("read")).into_owned();
        let rule = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .expect("expect line")
            .trim()
            .to_string();
        let fs = f.display().to_string();
        let out = s.run(&["--file", &fs, "check"], None).fails_with(3);
        let err = out.stderr();
        assert!(
            err.contains(&format!("error[{rule}]")),
            "{fs}: rule {rule} not named:\n{err}"
        );
        assert!(err.contains("  fix: "), "{fs}: no fix:\n{err}");
        let diag_line = err
            .lines()
            .find(|l| l.starts_with(&format!("error[{rule}]")))
            .expect("line");
        // error[rule]: FILE:LINE:COL: FIELD: message
        let after = diag_line.split_once("]: ").expect("shape").1;
        assert!(after.starts_with(&fs), "{fs}: file not named: {diag_line}");
        let rest = &after[fs.len()..];
        let mut parts = rest.splitn(4, ':');
        assert_eq!(parts.next(), Some(""));
        assert!(parts.next().expect("line").parse::<usize>().is_ok(), "{diag_line}");
        assert!(parts.next().expect("col").parse::<usize>().is_ok(), "{diag_line}");
        assert!(!parts.next().expect("field").trim().is_empty(), "{diag_line}");

        let j = s.run(&["--file", &fs, "check", "--json"], None).fails_with(3).json();
        assert_eq!(j["valid"], false);
        assert!(
            j["diagnostics"]
                .as_array()
                .expect("array")
                .iter()
                .any(|d| d["rule"] == rule.as_str())
        );
    }
}

#[test]
fn commands_that_need_the_declaration_refuse_an_invalid_one() {
    let s = Sandbox::new(&built().full);
    let f = root()
        .join("tests/corpus/bad/redirect-userinfo.toml")
        .display()
        .to_string();
    let out = s
        .run(
            &["--file", &f, "secrets", "set", "client-id", "--from-stdin"],
            Some(b"abc"),
        )
        .fails_with(3);
    assert!(out.stderr().contains("url-userinfo"), "{}", out.stderr());
}

#[test]
fn a_binary_file_is_rejected_cleanly() {
    let s = Sandbox::new(&built().full);
    let f = s.path().join("bin.toml");
    std::fs::write(&f, [0xff, 0xfe, 0x00, 0x41, 0x0a]).expect("write");
    let out = s
        .run(&["--file", &f.display().to_string(), "check"], None)
        .fails_with(3);
    assert!(out.stderr().contains("not valid UTF-8"), "{}", out.stderr());
}
