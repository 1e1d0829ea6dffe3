//! What the pages load, all embedded in the binary: the stylesheet, the one small script
//! (keypad, live payment status, bank-name look-up, countdown) and the chime, a short WAV
//! made once at start-up.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::api::AppState;

pub(crate) const CSS_PATH: &str = "/assets/app.css";
pub(crate) const JS_PATH: &str = "/assets/app.js";
pub(crate) const CHIME_PATH: &str = "/assets/chime.wav";

const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");

/// Samples per second of the chime.
const CHIME_RATE_HZ: u32 = 22_050;
/// Two notes, falling (E6 then C6), each this long.
const CHIME_NOTES_HZ: [f64; 2] = [1_318.5, 1_046.5];
const CHIME_NOTE_MS: u32 = 220;

static CHIME: LazyLock<Vec<u8>> = LazyLock::new(chime_wav);

pub(super) fn router() -> Router<AppState> {
    // Assets change only with the binary; a day's caching is safe and saves the tablet.
    let cached = "public, max-age=86400";
    Router::new()
        .route(
            CSS_PATH,
            get(move || async move {
                ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, cached)], CSS)
                    .into_response()
            }),
        )
        .route(
            JS_PATH,
            get(move || async move {
                (
                    [
                        (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                        (header::CACHE_CONTROL, cached),
                    ],
                    JS,
                )
                    .into_response()
            }),
        )
        .route(
            CHIME_PATH,
            get(move || async move {
                ([(header::CONTENT_TYPE, "audio/wav"), (header::CACHE_CONTROL, cached)], CHIME.as_slice())
                    .into_response()
            }),
        )
}

/// A mono 16-bit PCM WAV of two soft notes, each fading out.
fn chime_wav() -> Vec<u8> {
    let per_note = CHIME_RATE_HZ * CHIME_NOTE_MS / 1000;
    let mut samples: Vec<i16> = Vec::with_capacity((per_note as usize) * CHIME_NOTES_HZ.len());
    for hz in CHIME_NOTES_HZ {
        for n in 0..per_note {
            let t = f64::from(n) / f64::from(CHIME_RATE_HZ);
            let fade = (-t * 9.0).exp();
            let attack = (f64::from(n) / 60.0).min(1.0);
            let value = (2.0 * std::f64::consts::PI * hz * t).sin() * fade * attack * 0.5;
            samples.push((value * f64::from(i16::MAX)) as i16);
        }
    }
    let data_bytes = (samples.len() * 2) as u32;
    let mut wav = Vec::with_capacity(44 + data_bytes as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_bytes).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&CHIME_RATE_HZ.to_le_bytes());
    wav.extend_from_slice(&(CHIME_RATE_HZ * 2).to_le_bytes()); // bytes per second
    wav.extend_from_slice(&2u16.to_le_bytes()); // bytes per frame
    wav.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_bytes.to_le_bytes());
    for s in samples {
        wav.extend_from_slice(&s.to_le_bytes());
    }
    wav
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chime_is_a_whole_wav_file() {
        let wav = chime_wav();
        assert_eq!(&wav[..4], b"RIFF");
        assert_eq!(&wav[8..16], b"WAVEfmt ");
        let riff = u32::from_le_bytes(wav[4..8].try_into().unwrap()) as usize;
        assert_eq!(riff + 8, wav.len());
        let data = u32::from_le_bytes(wav[40..44].try_into().unwrap()) as usize;
        assert_eq!(data + 44, wav.len());
        assert!(wav.len() < 64 * 1024, "small enough to load at once: {} bytes", wav.len());
    }
}
