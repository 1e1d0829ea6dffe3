//! Running the wallet as `machi-demo wallet`, the way the demo's guide tells people to.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

/// `machi-demo wallet`, ready for the wallet's own arguments.
pub(crate) fn wallet_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_machi-demo"));
    command.arg("wallet");
    command
}

pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) json: Value,
    pub(crate) stderr: String,
}

/// Runs the wallet with `input` on its standard input (the PINs and resident numbers it
/// asks for, one a line, as a script pipes them).
pub(crate) fn wallet(node: &str, keystore: &Path, args: &[&str], input: &str) -> Run {
    let mut child = wallet_command()
        .args(["--node", node, "--keystore"])
        .arg(keystore)
        .args(["--json", "--lang", "en"])
        .args(args)
        .env_remove("MACHI_PIN")
        .env_remove("MACHI_NEW_PIN")
        .env_remove("MACHI_RESIDENT_NUMBER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("machi-demo wallet runs");
    // A command that fails before it reads its input closes the pipe early.
    let _ = child.stdin.take().expect("stdin").write_all(input.as_bytes());
    let output = child.wait_with_output().expect("machi-demo wallet ends");
    Run {
        code: output.status.code().unwrap_or(-1),
        json: serde_json::from_slice(&output.stdout).unwrap_or(Value::Null),
        stderr: String::from_utf8_lossy(&output.stderr).to_string(),
    }
}

#[track_caller]
pub(crate) fn ok(run: Run) -> Value {
    assert_eq!(run.code, 0, "{} {}", run.json, run.stderr);
    run.json
}

pub(crate) fn card(json: &Value) -> String {
    json["card"].as_str().expect("a card number").to_string()
}
