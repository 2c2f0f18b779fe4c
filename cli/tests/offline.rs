//! Snapshot tests of the plugin's offline output over the city example: help
//! text, shell completion, and `request --dry-run --from-files`. Each output
//! is compared with `tests/snapshots/<name>.txt`; run with
//! `UPDATE_SNAPSHOTS=1` to rewrite them after an intended change.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Runs the plugin from the repository root with no kubeconfig and no colour.
fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-datamesh"))
        .args(args)
        .current_dir(repo())
        .env_remove("KUBECONFIG")
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run kubectl-datamesh: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Replaces policy-set hashes, which change with any edit to the shipped policies.
fn normalise(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("sha256:") {
        out.push_str(&rest[..i]);
        out.push_str("sha256:<version>");
        rest = rest[i + 7..].trim_start_matches(|c: char| c.is_ascii_hexdigit());
    }
    out.push_str(rest);
    out
}

/// Compares `actual` with the committed snapshot, or writes it when asked.
fn snapshot(name: &str, raw: &str) {
    let actual: &str = &normalise(raw);
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_SNAPSHOTS=1 to create it)",
            path.display()
        )
    });
    if expected != actual {
        let diff = similar::TextDiff::from_lines(expected.as_str(), actual)
            .unified_diff()
            .header("expected", "actual")
            .to_string();
        panic!("{name} differs from its snapshot (UPDATE_SNAPSHOTS=1 to accept):\n{diff}");
    }
}

#[test]
fn top_level_help_lists_every_command() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    snapshot("help", &out);
}

#[test]
fn request_help_names_every_flag() {
    let (code, out, _) = run(&["request", "--help"]);
    assert_eq!(code, 0);
    snapshot("request-help", &out);
}

#[test]
fn completion_scripts_cover_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, err) = run(&["completion", shell]);
        assert_eq!(code, 0, "{shell}: {err}");
        for sub in ["catalog", "request", "approve", "explain", "status"] {
            assert!(out.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    let (_, fish, _) = run(&["completion", "fish"]);
    snapshot("completion-fish", &fish);
    let (code, _, err) = run(&["completion", "powershell"]);
    assert_eq!(code, 2, "an unknown shell is unusable input: {err}");
}

const NOW: &str = "2026-11-01T09:00:00Z";

#[test]
fn dry_run_needs_approval_for_the_research_study() {
    let (code, out, err) = run(&[
        "request",
        "social-care/case-records",
        "-n",
        "urban-observatory",
        "--purpose",
        "research",
        "--fields",
        "person_key,age_band,ward_code,referral_date,service_type",
        "--until",
        "2027-06-30",
        "--dpia-reference",
        "UO-DPIA-2026-004",
        "--name",
        "ward-referrals-study",
        "--dry-run",
        "--from-files",
        "examples/city",
        "--now",
        NOW,
    ]);
    assert_eq!(code, 0, "{err}");
    snapshot("dry-run-needs-approval", &out);
}

#[test]
fn dry_run_denies_marketing_with_every_reason_and_hint() {
    let (code, out, err) = run(&[
        "request",
        "case-records",
        "--consumer",
        "civic-mobility",
        "--purpose",
        "marketing",
        "--fields",
        "person_key,age_band",
        "--until",
        "2027-03-31",
        "--commercial",
        "--dry-run",
        "--from-files",
        "examples/city",
        "--now",
        NOW,
    ]);
    assert_eq!(code, 1, "a denial is a problem found: {err}");
    snapshot("dry-run-denied", &out);
    assert!(out.contains("use one of the permitted purposes: research"));
    assert!(out.contains("needs the dpia-process accreditation"));
}

#[test]
fn dry_run_json_is_machine_readable() {
    let (code, out, err) = run(&[
        "request",
        "transport/bus-punctuality",
        "-n",
        "civic-mobility",
        "--purpose",
        "service-planning",
        "--fields",
        "route_id,stop_id",
        "--until",
        "2027-01-31",
        "--dry-run",
        "--from-files",
        "examples/city",
        "--now",
        NOW,
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    assert_eq!(doc["decision"]["outcome"], "Allow");
    assert_eq!(doc["spec"]["consumer"], "civic-mobility");
    assert_eq!(doc["spec"]["end"], "2027-01-31T23:59:59Z");
    assert_eq!(
        doc["grantedFields"],
        serde_json::json!(["route_id", "stop_id"])
    );
}

#[test]
fn bad_input_exits_2_and_says_what_is_wrong() {
    let (code, _, err) = run(&[
        "request",
        "transport/bus-punctuality",
        "-n",
        "civic-mobility",
        "--purpose",
        "Service Planning",
        "--fields",
        "route_id",
        "--until",
        "2027-01-31",
        "--dry-run",
        "--from-files",
        "examples/city",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("--purpose Service Planning"), "{err}");
    let (code, _, err) = run(&[
        "request",
        "transport/bus-punctuality",
        "-n",
        "civic-mobility",
        "--purpose",
        "research",
        "--fields",
        "route_id",
        "--until",
        "next week",
        "--dry-run",
        "--from-files",
        "examples/city",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("--until next week: expected a date"), "{err}");
}

#[test]
fn no_cluster_names_the_kubeconfig() {
    let missing = std::env::temp_dir().join("datamesh-no-such-kubeconfig");
    let (code, _, err) = run(&[
        "catalog",
        "--kubeconfig",
        missing.to_str().unwrap_or_default(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot use kubeconfig"), "{err}");
    assert!(err.contains("datamesh-no-such-kubeconfig"), "{err}");
}

#[test]
fn no_colour_when_stdout_is_not_a_terminal() {
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-datamesh"))
        .args([
            "request",
            "case-records",
            "--consumer",
            "civic-mobility",
            "--purpose",
            "marketing",
            "--fields",
            "person_key",
            "--until",
            "2027-03-31",
            "--dry-run",
            "--from-files",
            "examples/city",
        ])
        .current_dir(repo())
        .env_remove("NO_COLOR")
        .output()
        .unwrap_or_else(|e| panic!("cannot run kubectl-datamesh: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Deny"), "{stdout}");
    assert!(
        !stdout.contains('\u{1b}'),
        "escape codes in piped output: {stdout:?}"
    );
}
