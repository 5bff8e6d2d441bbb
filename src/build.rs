//! Build script: records the git commit for `--version`, `/health` and the
//! `build_info` metric. `BUILD_GIT_SHA` overrides (for builds outside git).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=BUILD_GIT_SHA");
    for path in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let sha = std::env::var("BUILD_GIT_SHA").ok().or_else(|| {
        let out = Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    });
    println!(
        "cargo:rustc-env=BUILD_GIT_SHA={}",
        sha.filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".into())
    );
}
