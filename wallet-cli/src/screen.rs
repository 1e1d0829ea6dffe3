//! Drawing kiosk screens: big block digits for amounts, and the 80×24 budget every
//! screen must fit (Japanese characters take two columns).

use unicode_width::UnicodeWidthStr;

pub const SCREEN_COLUMNS: usize = 80;
pub const SCREEN_ROWS: usize = 24;
/// Rows of a big-digit line.
pub const BIG_ROWS: usize = 5;

fn glyph(c: char) -> Option<[&'static str; BIG_ROWS]> {
    Some(match c {
        '0' => ["████", "█  █", "█  █", "█  █", "████"],
        '1' => ["  █ ", " ██ ", "  █ ", "  █ ", " ███"],
        '2' => ["████", "   █", "████", "█   ", "████"],
        '3' => ["████", "   █", " ███", "   █", "████"],
        '4' => ["█  █", "█  █", "████", "   █", "   █"],
        '5' => ["████", "█   ", "████", "   █", "████"],
        '6' => ["████", "█   ", "████", "█  █", "████"],
        '7' => ["████", "   █", "  █ ", " █  ", " █  "],
        '8' => ["████", "█  █", "████", "█  █", "████"],
        '9' => ["████", "█  █", "████", "   █", "████"],
        ',' => ["  ", "  ", "  ", " █", "█ "],
        '¥' => ["█   █", " █ █ ", "█████", "  █  ", "  █  "],
        _ => return None,
    })
}

/// `text` (digits, `,` and `¥`) in block letters five rows tall, e.g. an amount as
/// `Yen`'s `Display` writes it. Other characters are left out.
pub fn big_digits(text: &str) -> Vec<String> {
    let glyphs: Vec<[&str; BIG_ROWS]> = text.chars().filter_map(glyph).collect();
    (0..BIG_ROWS).map(|row| glyphs.iter().map(|g| g[row]).collect::<Vec<_>>().join(" ")).collect()
}

/// Columns a line takes on a terminal (wide characters count two).
pub fn columns(line: &str) -> usize {
    UnicodeWidthStr::width(line)
}

/// `line` broken into pieces of at most `width` columns (at character boundaries, as
/// Japanese text is written; ASCII words are not split when a space is near).
pub fn wrap(line: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in line.chars() {
        let mut next = current.clone();
        next.push(c);
        if columns(&next) > width && c == ' ' {
            out.push(std::mem::take(&mut current));
        } else if columns(&next) > width {
            let cut = current.rfind(' ').filter(|&i| i > current.len() / 2 && current.is_ascii());
            match cut {
                Some(i) => {
                    out.push(current[..i].to_string());
                    current = current[i + 1..].to_string();
                }
                None => out.push(std::mem::take(&mut current)),
            }
            current.push(c);
        } else {
            current = next;
        }
    }
    out.push(current);
    out
}

/// Whether a screen's lines fit the kiosk terminal.
pub fn fits(lines: &[String]) -> bool {
    lines.len() <= SCREEN_ROWS && lines.iter().all(|l| columns(l) <= SCREEN_COLUMNS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_in_big_digits_fit_the_screen() {
        let lines = big_digits("¥12,500");
        assert_eq!(lines.len(), BIG_ROWS);
        assert_eq!(lines[0], "█   █   █  ████    ████ ████ ████");
        // The largest invoice the merchant API accepts still fits in 80 columns.
        assert!(big_digits("¥10,000,000").iter().all(|l| columns(l) <= SCREEN_COLUMNS));
        assert_eq!(columns("支払いが完了しました"), 20);
        let long =
            "その支払いコードは見つかりません（期限切れか、番号の間違いです）お店の方に確認してください。";
        let lines = wrap(long, 40);
        assert!(lines.len() > 1 && lines.iter().all(|l| columns(l) <= 40));
        assert_eq!(lines.concat(), long);
        assert_eq!(
            wrap("Type the card number and press Enter.", 20),
            ["Type the card number", "and press Enter."]
        );
    }
}
