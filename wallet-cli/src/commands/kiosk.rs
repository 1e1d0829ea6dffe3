//! `kiosk`: its flags, handed to the kiosk flow (`crate::kiosk`), which knows nothing of
//! the other commands.

use std::path::PathBuf;
use std::time::Duration;

use crate::ctx::{Ctx, Failure};

/// Longest kiosk time-out that can be asked for.
const KIOSK_TIMEOUT_S_MAX: u64 = 86_400;

/// Flags of `kiosk`.
#[derive(clap::Args)]
pub(crate) struct KioskArgs {
    /// Seconds without input before the kiosk goes back to the first screen.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u64).range(1..=KIOSK_TIMEOUT_S_MAX))]
    timeout_s: u64,
    /// Folder where receipts are written for the kiosk printer.
    #[arg(long, default_value = "receipts")]
    receipts: PathBuf,
}

pub(crate) async fn run(ctx: &Ctx, args: KioskArgs) -> Result<(), Failure> {
    crate::kiosk::run(ctx, Duration::from_secs(args.timeout_s), &args.receipts).await
}
