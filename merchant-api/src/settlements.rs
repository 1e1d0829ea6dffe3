//! The town's settlements as the service keeps them: in memory, and one file each on disk.

use std::collections::BTreeMap;
use std::path::Path;

use crate::model::Settlement;
use crate::store::read_all;

/// The settlements, kept in memory (a town makes a few a month) and on disk.
#[derive(Default)]
pub(crate) struct Settlements {
    pub(crate) by_id: BTreeMap<String, Settlement>,
    /// The highest number any settlement id has had; the next one is one more.
    pub(crate) seq: u64,
}

impl Settlements {
    /// Every settlement in `dir`. The next number comes from every file there (a file
    /// written before a crash kept its settlement from being recorded still holds its
    /// number) and from what sled kept, so no id is ever used twice.
    pub(crate) fn load(dir: &Path, seq_in_sled: u64) -> anyhow::Result<Settlements> {
        let by_id: BTreeMap<String, Settlement> =
            read_all::<Settlement>(dir)?.into_iter().map(|s| (s.id.clone(), s)).collect();
        let mut seq = seq_in_sled;
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries {
                let name = entry?.file_name();
                seq = seq.max(settlement_seq(&name.to_string_lossy()).unwrap_or(0));
            }
        }
        Ok(Settlements { by_id, seq })
    }
}

/// The number in a settlement file's name (`stl_YYYYMMDD_NNNN.json`).
fn settlement_seq(file_name: &str) -> Option<u64> {
    let stem = file_name.strip_prefix("stl_")?.split('.').next()?;
    let (_date, seq) = stem.split_once('_')?;
    seq.parse().ok()
}
