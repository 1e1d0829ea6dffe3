//! What people type that others must not see: PINs and resident numbers. None of them
//! is ever a command-line argument, where `ps` and the shell's history would show it.
//! Each comes from its environment variable if that is set (for scripts), else from the
//! terminal (PINs with echo off; a new PIN typed twice), else as the next line of
//! standard input (for scripts that pipe them, in the order the command asks).

use std::io::{BufRead, IsTerminal, Read, Write};

use crate::ctx::{user, Failure};
use crate::keystore::check_pin;
use crate::text::t;
use crate::Lang;

/// The PIN of the card that signs (`--card`).
pub(crate) const PIN_ENV: &str = "MACHI_PIN";
/// The PIN chosen for a new card (register-resident, replace-card).
pub(crate) const NEW_PIN_ENV: &str = "MACHI_NEW_PIN";
/// The resident number (register-resident).
pub(crate) const RESIDENT_NUMBER_ENV: &str = "MACHI_RESIDENT_NUMBER";
/// Longest line read for one secret.
const LINE_BYTES_MAX: u64 = 256;

/// Asks for secrets, one after another, from one source per secret.
pub(crate) struct Secrets {
    lang: Lang,
    terminal: bool,
}

impl Secrets {
    pub(crate) fn new(lang: Lang) -> Secrets {
        Secrets { lang, terminal: std::io::stdin().is_terminal() }
    }

    fn t<'a>(&self, ja: &'a str, en: &'a str) -> &'a str {
        t(self.lang, ja, en)
    }

    /// The signing card's PIN.
    pub(crate) fn pin(&mut self) -> Result<String, Failure> {
        let prompt = self.t("暗証番号: ", "PIN: ");
        let pin = self.ask(PIN_ENV, prompt, false)?;
        check_pin(&pin)?;
        Ok(pin)
    }

    /// The PIN for a new card, typed twice at a terminal; nothing has been done yet if
    /// the two differ.
    pub(crate) fn new_pin(&mut self) -> Result<String, Failure> {
        let prompt = self.t("新しいカードの暗証番号（4〜8けた）: ", "New card's PIN (4 to 8 digits): ");
        let pin = self.ask(NEW_PIN_ENV, prompt, false)?;
        check_pin(&pin)?;
        if self.terminal && std::env::var_os(NEW_PIN_ENV).is_none() {
            let again = self.ask(NEW_PIN_ENV, self.t("もう一度: ", "Once more: "), false)?;
            if again != pin {
                return Err(user(self.t(
                    "2回の暗証番号が一致しません。何も行っていません。",
                    "the two PINs differ; nothing was done",
                )));
            }
        }
        Ok(pin)
    }

    /// The resident number (shown as it is typed: the operator checks it).
    pub(crate) fn resident_number(&mut self) -> Result<String, Failure> {
        self.ask(RESIDENT_NUMBER_ENV, self.t("住民番号: ", "Resident number: "), true)
    }

    fn ask(&mut self, env: &str, prompt: &str, echo: bool) -> Result<String, Failure> {
        if let Ok(value) = std::env::var(env) {
            return Ok(value.trim().to_string());
        }
        let line = if self.terminal {
            eprint!("{prompt}");
            let _ = std::io::stderr().flush();
            let _quiet = (!echo).then(EchoOff::new);
            let line = read_line();
            if !echo {
                eprintln!();
            }
            line
        } else {
            read_line()
        };
        match line {
            Some(line) => Ok(line),
            None => Err(user(format!(
                "{} {env}",
                self.t(
                    "入力がありません。端末で入力するか、標準入力で渡すか、次の環境変数を設定してください:",
                    "nothing was typed: type it at a terminal, pipe it on standard input, or set",
                )
            ))),
        }
    }
}

/// The next line of standard input without its line end; `None` at its end.
fn read_line() -> Option<String> {
    let mut line = String::new();
    match std::io::stdin().lock().take(LINE_BYTES_MAX).read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim().to_string()),
    }
}

/// Turns the terminal's echo off while alive (when standard input is a terminal).
pub(crate) struct EchoOff(Option<rustix::termios::Termios>);

impl EchoOff {
    pub(crate) fn new() -> EchoOff {
        let stdin = std::io::stdin();
        let Ok(saved) = rustix::termios::tcgetattr(&stdin) else { return EchoOff(None) };
        let mut quiet = saved.clone();
        quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &quiet);
        EchoOff(Some(saved))
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ =
                rustix::termios::tcsetattr(std::io::stdin(), rustix::termios::OptionalActions::Now, saved);
        }
    }
}
