use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    let revision = std::env::var("BALANCE_EXPORTER_REVISION")
        .ok()
        .or_else(|| output("git", &["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = output(&rustc, &["--version"])
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=BALANCE_EXPORTER_REVISION={revision}");
    println!("cargo:rustc-env=BALANCE_EXPORTER_RUSTC_VERSION={rustc_version}");
    println!("cargo:rerun-if-env-changed=BALANCE_EXPORTER_REVISION");
    // In a worktree `.git` is a file; ask git where HEAD and the refs really are. A
    // path that does not exist would make cargo rerun this script (and rebuild the
    // crate) on every build.
    for what in ["HEAD", "refs/heads"] {
        let path = output("git", &["rev-parse", "--git-path", what])
            .unwrap_or_else(|| format!(".git/{what}"));
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
