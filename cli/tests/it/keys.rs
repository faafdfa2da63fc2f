//! `pocmesh keys new|show`.

use crate::{json, pocmesh};

#[test]
fn new_then_show_agree_and_the_file_is_private() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("node.key");
    let p = path.to_str().expect("utf-8 path");
    let created = json(&pocmesh(&["keys", "new", "--out", p, "--json"], None));
    let shown = json(&pocmesh(&["keys", "show", p, "--json"], None));
    assert_eq!(created["address"], shown["address"]);
    let addr = shown["address"].as_str().expect("address");
    assert!(addr.starts_with("0x") && addr.len() == 42);
    assert_eq!(
        shown["xdc"].as_str().expect("xdc"),
        format!("xdc{}", &addr[2..])
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // The secret never reaches stdout.
    let secret = std::fs::read_to_string(&path).expect("key file");
    let out = pocmesh(&["keys", "show", p], None);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(secret.trim().trim_start_matches("0x")));
}

#[test]
fn refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = dir.path().join("k.key");
    let p = p.to_str().expect("utf-8");
    assert!(pocmesh(&["keys", "new", "--out", p], None).status.success());
    let again = pocmesh(&["keys", "new", "--out", p], None);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert!(
        pocmesh(&["keys", "new", "--out", p, "--force"], None)
            .status
            .success()
    );
}

#[test]
fn a_missing_key_file_says_which() {
    let out = pocmesh(&["keys", "show", "/nonexistent/dir/x.key"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/dir/x.key"));
}
