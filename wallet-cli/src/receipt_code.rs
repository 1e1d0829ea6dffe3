//! A receipt's check code (docs/FORMAT.md, "Receipt code"): the text
//! `MACHI-RECEIPT:V1:<chain id>:<TX ID>:<height>:<BLOCK HASH>`, printed on the receipt
//! and drawn as a QR code, that `machi-wallet verify-receipt` (or anyone with an RFC 6962
//! implementation) checks against a block hash the town publishes.
//!
//! The prefix and the hashes are written in capitals so that all of it but the chain id
//! is QR's alphanumeric mode: the code stays version 6 (41 modules) for a short chain id,
//! small enough for the kiosk's 80×24 screen. Readers take either case.

use machi_ledger::{chain_id_is_valid, Hash32, TxId};
use qrcode::render::unicode::Dense1x2;
use qrcode::render::Renderer;
use qrcode::{EcLevel, QrCode};

use crate::screen::{columns, SCREEN_COLUMNS, SCREEN_ROWS};
use crate::Lang;

pub const PREFIX: &str = "MACHI-RECEIPT:V1:";
/// Quiet zone around the code on paper (what the QR standard asks), in modules.
const PRINT_QUIET_MODULES: u32 = 4;
/// Quiet zone on the kiosk's screen, in modules: the terminal's dark edge lies beyond
/// it, and two modules keep a version 6 code within the screen's rows.
const SCREEN_QUIET_MODULES: u32 = 2;
/// Columns between the code and the words beside it.
const GAP_COLUMNS: usize = 2;

/// What a receipt says about its transaction: enough to fetch its proof from any replica
/// and to name the block it must be checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptCode {
    pub chain_id: String,
    pub tx_id: TxId,
    pub height: u64,
    pub block_hash: Hash32,
}

impl ReceiptCode {
    /// The text of the code.
    pub fn payload(&self) -> String {
        format!(
            "{PREFIX}{}:{}:{}:{}",
            self.chain_id,
            self.tx_id.to_hex().to_uppercase(),
            self.height,
            self.block_hash.to_hex().to_uppercase()
        )
    }

    /// Reads a code's text (the prefix and the hex digits in either case).
    pub fn parse(text: &str) -> Option<ReceiptCode> {
        let text = text.trim();
        let rest = text
            .get(..PREFIX.len())
            .filter(|p| p.eq_ignore_ascii_case(PREFIX))
            .map(|_| &text[PREFIX.len()..])?;
        let mut fields = rest.split(':');
        let (chain_id, tx_id, height, block_hash) =
            (fields.next()?, fields.next()?, fields.next()?, fields.next()?);
        if fields.next().is_some() || !chain_id_is_valid(chain_id) {
            return None;
        }
        let height = height.parse().ok().filter(|_| height.bytes().all(|b| b.is_ascii_digit()))?;
        Some(ReceiptCode {
            chain_id: chain_id.to_string(),
            tx_id: TxId::from_hex(&tx_id.to_ascii_lowercase())?,
            height,
            block_hash: Hash32::from_hex(&block_hash.to_ascii_lowercase())?,
        })
    }

    /// The first code in a text (a receipt file), wherever it stands on its line.
    pub fn find(text: &str) -> Option<ReceiptCode> {
        text.split_whitespace().find_map(ReceiptCode::parse)
    }

    fn qr(&self) -> QrCode {
        QrCode::with_error_correction_level(self.payload(), EcLevel::L)
            .expect("a receipt code is far below a QR code's capacity")
    }

    /// The code for a printed receipt: dark modules as blocks on white paper.
    pub fn print_lines(&self) -> Vec<String> {
        let code = self.qr();
        let colors = code.to_colors();
        let image = Renderer::<Dense1x2>::new(&colors, code.width(), PRINT_QUIET_MODULES).build();
        image.lines().map(str::to_string).collect()
    }

    /// The code for a terminal's light text on a dark background: light modules (and
    /// the quiet zone) are drawn, so it shows dark on light as printed.
    pub fn screen_lines(&self) -> Vec<String> {
        let code = self.qr();
        let colors = code.to_colors();
        let image = Renderer::<Dense1x2>::new(&colors, code.width(), SCREEN_QUIET_MODULES)
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .build();
        image.lines().map(str::to_string).collect()
    }

    /// A whole kiosk screen: the code on the left, `words` beside it, `prompt` on the
    /// last row. None when the code and the prompt do not fit 80×24 (a very long chain
    /// id): the printed receipt still carries the code.
    pub(crate) fn screen(&self, words: &[String], prompt: &str) -> Option<Vec<String>> {
        let code = self.screen_lines();
        let code_columns = code.first().map_or(0, |l| columns(l));
        let room = SCREEN_COLUMNS.checked_sub(code_columns + GAP_COLUMNS)?;
        if code.len() + 1 > SCREEN_ROWS || words.len() > code.len() || words.iter().any(|w| columns(w) > room)
        {
            return None;
        }
        let mut lines: Vec<String> = code
            .iter()
            .enumerate()
            .map(|(i, row)| match words.get(i) {
                Some(word) if !word.is_empty() => format!("{row}{}{word}", " ".repeat(GAP_COLUMNS)),
                _ => row.clone(),
            })
            .collect();
        lines.push(prompt.to_string());
        Some(lines)
    }
}

/// The kiosk's receipt screen: the code, and beside it that the receipt is printed and
/// what the code is for, in plain words; the input on the last row. None when the code
/// does not fit the screen.
pub(crate) fn kiosk_screen(lang: Lang, code: &ReceiptCode) -> Option<Vec<String>> {
    let hex = code.tx_id.to_hex();
    let mut words: Vec<String> = match lang {
        Lang::Ja => vec![
            "━━ 領収書 ━━",
            "",
            "領収書を印刷しました。",
            "プリンターからお取りください。",
            "",
            "左の QR コードをスマートフォンで",
            "読むと、この取引が町の記録に",
            "入っていることを、だれでも",
            "確かめられます。",
            "",
            "取引ID:",
        ],
        Lang::En => vec![
            "━━ Receipt ━━",
            "",
            "The receipt is printed;",
            "please take it from the printer.",
            "",
            "With a phone, the QR code on the",
            "left shows anyone that this is",
            "on the town's record.",
            "",
            "",
            "Transaction:",
        ],
    }
    .into_iter()
    .map(str::to_string)
    .collect();
    words.push(hex[..32].to_string());
    words.push(hex[32..].to_string());
    words.push(match lang {
        Lang::Ja => format!("ブロック: {}", code.height),
        Lang::En => format!("Block: {}", code.height),
    });
    let prompt = match lang {
        Lang::Ja => "  Enter = メニューにもどる  > ",
        Lang::En => "  Enter = back to the menu  > ",
    };
    code.screen(&words, prompt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ReceiptCode {
        ReceiptCode {
            chain_id: "bandai-2026".into(),
            tx_id: TxId([0xab; 32]),
            height: 123_456,
            block_hash: Hash32([0x0f; 32]),
        }
    }

    #[test]
    fn a_code_reads_back_in_either_case_and_nothing_else_reads() {
        let code = sample();
        let text = code.payload();
        assert!(text.starts_with("MACHI-RECEIPT:V1:bandai-2026:ABABAB"), "{text}");
        assert_eq!(ReceiptCode::parse(&text), Some(code.clone()));
        assert_eq!(ReceiptCode::parse(&text.to_lowercase()), Some(code.clone()));
        let in_a_file = format!("領収書\n確認用コード: {text}\nおつりは出ません\n");
        assert_eq!(ReceiptCode::find(&in_a_file), Some(code.clone()));
        for bad in [
            text.replace("V1", "V2"),
            text.replace(":123456:", ":-1:"),
            text.replace(":123456:", ":+5:"),
            text.replace(":123456:", "::"),
            format!("{text}:extra"),
            text[..text.len() - 1].to_string(),
            text.replace("bandai-2026", "bandai 2026"),
            text.replace("bandai-2026", ""),
        ] {
            assert_eq!(ReceiptCode::parse(&bad), None, "{bad}");
        }
    }

    /// docs/FORMAT.md's example ("Receipt code"): the fields on one line, the code on the next.
    #[test]
    fn format_md_example_holds() {
        let doc = include_str!("../../docs/FORMAT.md");
        let mut lines = doc.lines().skip_while(|l| !l.starts_with("receipt-code "));
        let fields: Vec<&str> =
            lines.next().expect("the example's fields").split_whitespace().skip(1).collect();
        let text = lines.next().expect("the example's code");
        let [chain_id, tx, height, hash] = fields[..] else { panic!("four fields: {fields:?}") };
        let code = ReceiptCode {
            chain_id: chain_id.into(),
            tx_id: tx.parse().unwrap(),
            height: height.parse().unwrap(),
            block_hash: hash.parse().unwrap(),
        };
        assert_eq!(code.payload(), text);
        assert_eq!(ReceiptCode::parse(text), Some(code));
    }

    #[test]
    fn the_code_of_a_short_chain_id_fits_the_kiosk_screen_beside_its_words() {
        let code = sample();
        let qr = code.qr();
        assert_eq!(qr.version(), qrcode::Version::Normal(6), "alphanumeric mode keeps it small");
        let words = vec!["領収書を印刷しました。".to_string(); 10];
        let screen = code.screen(&words, "Enter = メニューにもどる").expect("fits");
        assert!(crate::screen::fits(&screen), "{screen:#?}");
        // The drawn rows are exactly the code's modules, with two light modules around.
        let drawn = code.screen_lines();
        let width = qr.width() + 4;
        let light = |x: usize, y: usize| {
            if x < 2 || y < 2 || x >= width - 2 || y >= width - 2 {
                return true;
            }
            qr.to_colors()[(y - 2) * qr.width() + (x - 2)] == qrcode::Color::Light
        };
        for (row, line) in drawn.iter().enumerate() {
            for (x, c) in line.chars().enumerate() {
                // An odd last module row is drawn over nothing below it.
                let (top, bottom) = (light(x, 2 * row), 2 * row + 1 < width && light(x, 2 * row + 1));
                let expected = match (top, bottom) {
                    (true, true) => '█',
                    (true, false) => '▀',
                    (false, true) => '▄',
                    (false, false) => ' ',
                };
                assert_eq!(c, expected, "row {row} column {x}");
            }
        }
        for lang in [Lang::Ja, Lang::En] {
            let screen = kiosk_screen(lang, &code).expect("the kiosk's receipt screen fits");
            assert!(crate::screen::fits(&screen), "{screen:#?}");
            assert!(screen.iter().any(|l| l.contains(&code.tx_id.to_hex()[32..])));
        }
        // FORMAT.md's promise: a chain id of up to 16 characters keeps version 6.
        let sixteen = ReceiptCode { chain_id: "bandai-town-2026".into(), ..code.clone() };
        assert_eq!(sixteen.qr().version(), qrcode::Version::Normal(6));
        assert!(kiosk_screen(Lang::Ja, &sixteen).is_some());
        // A 64-character chain id does not fit: the kiosk then shows the words alone.
        let long = ReceiptCode { chain_id: "x".repeat(64), ..code };
        assert!(long.screen(&words, "Enter").is_none());
        assert!(!long.print_lines().is_empty());
    }
}
