//! The block log: the source of truth. An append-only file of records
//! `u32le(len) || u32le(crc32(payload)) || payload`, one block per record, after an
//! 8-byte file magic. A block is acknowledged only after its record is written and
//! `fdatasync`ed. On open, a torn or corrupt last record (a crash mid-append) is found
//! by its length or checksum and cut: it can only hold a block no client was told about.
//!
//! The file sits behind the small `LogFile` trait so tests can run on memory and inject
//! faults.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

pub(crate) const MAGIC: &[u8; 8] = b"machilg1";
const RECORD_HEADER_BYTES: u64 = 8;
/// A block record larger than this is corrupt by definition.
pub(crate) const RECORD_BYTES_MAX: u32 = 64 * 1024 * 1024;

/// The few file operations the block log needs.
pub trait LogFile: Send + Sync {
    fn size(&self) -> io::Result<u64>;
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes every appended byte durable (fdatasync).
    fn sync(&mut self) -> io::Result<()>;
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

pub struct DiskFile {
    file: File,
}

impl DiskFile {
    pub fn open(path: &Path) -> io::Result<DiskFile> {
        let file = OpenOptions::new().read(true).append(true).create(true).open(path)?;
        Ok(DiskFile { file })
    }
}

impl LogFile for DiskFile {
    fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.file.sync_all()
    }
}

/// An in-memory log file, shared so a test can look at (or break) what was "on disk".
#[derive(Clone, Default)]
pub struct MemFile {
    pub bytes: Arc<Mutex<Vec<u8>>>,
}

impl LogFile for MemFile {
    fn size(&self) -> io::Result<u64> {
        Ok(self.bytes.lock().expect("poisoned").len() as u64)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let bytes = self.bytes.lock().expect("poisoned");
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        let slice = bytes.get(start..start + buf.len()).ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(slice);
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.bytes.lock().expect("poisoned").extend_from_slice(bytes);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.bytes.lock().expect("poisoned").truncate(len as usize);
        Ok(())
    }
}

/// What opening a log found.
pub struct Opened {
    pub log: BlockLog,
    /// Each record's payload, in order.
    pub records: Vec<Vec<u8>>,
    /// Bytes cut from the end (a torn or corrupt last record).
    pub cut_bytes: u64,
}

pub struct BlockLog {
    file: Box<dyn LogFile>,
    /// Where each record starts; index = height.
    offsets: Vec<u64>,
    end: u64,
}

impl BlockLog {
    /// Opens a log, checking every record; cuts a bad tail. An empty file gets the magic.
    pub fn open(mut file: Box<dyn LogFile>) -> io::Result<Opened> {
        let len = file.size()?;
        if len == 0 {
            file.append(MAGIC)?;
            file.sync()?;
        } else {
            let mut magic = [0u8; 8];
            file.read_at(0, &mut magic).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidData, "block log too short for its header")
            })?;
            if &magic != MAGIC {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "not a machi block log (bad magic)"));
            }
        }
        let len = file.size()?;
        let mut offset = MAGIC.len() as u64;
        let mut offsets = Vec::new();
        let mut records = Vec::new();
        while let Some(payload) = read_record(file.as_ref(), offset, len)? {
            offsets.push(offset);
            offset += RECORD_HEADER_BYTES + payload.len() as u64;
            records.push(payload);
        }
        let cut_bytes = len - offset;
        if cut_bytes > 0 {
            if let Some(found) = intact_record_after(file.as_ref(), offset, len)? {
                // A torn append only ever damages the end; an intact record after the bad
                // one means the file was damaged in the middle. Cutting would throw away
                // acknowledged blocks, so refuse instead.
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "block log is damaged at block {} (byte {offset}): that record fails its length or \
                         checksum, but an intact record follows at byte {found}; refusing to cut \
                         acknowledged blocks",
                        records.len()
                    ),
                ));
            }
            file.truncate(offset)?;
        }
        Ok(Opened { log: BlockLog { file, offsets, end: offset }, records, cut_bytes })
    }

    pub fn open_path(path: &Path) -> io::Result<Opened> {
        BlockLog::open(Box::new(DiskFile::open(path)?))
    }

    pub fn count(&self) -> u64 {
        self.offsets.len() as u64
    }

    /// Appends one record and syncs it. On error the log is cut back to where it was, so
    /// a failed block leaves nothing behind.
    pub fn append(&mut self, payload: &[u8]) -> io::Result<()> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l <= RECORD_BYTES_MAX)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "block record too large"))?;
        let mut record = Vec::with_capacity(payload.len() + RECORD_HEADER_BYTES as usize);
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        record.extend_from_slice(payload);
        let written = self.file.append(&record).and_then(|()| self.file.sync());
        if let Err(e) = written {
            // Best effort: if even the cut fails, the next open finds the torn record.
            let _ = self.file.truncate(self.end);
            return Err(e);
        }
        self.offsets.push(self.end);
        self.end += record.len() as u64;
        Ok(())
    }

    pub fn read(&self, index: u64) -> io::Result<Vec<u8>> {
        let offset = *self
            .offsets
            .get(usize::try_from(index).map_err(|_| io::ErrorKind::InvalidInput)?)
            .ok_or(io::ErrorKind::NotFound)?;
        read_record(self.file.as_ref(), offset, self.end)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "block record changed on disk"))
    }
}

/// Where the first intact record after the damaged one at `bad` starts, if any.
fn intact_record_after(file: &dyn LogFile, bad: u64, end: u64) -> io::Result<Option<u64>> {
    let mut rest = vec![0u8; usize::try_from(end - bad).map_err(|_| io::ErrorKind::InvalidData)?];
    file.read_at(bad, &mut rest)?;
    for start in 1..rest.len().saturating_sub(RECORD_HEADER_BYTES as usize) {
        let header = &rest[start..start + RECORD_HEADER_BYTES as usize];
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        let body_start = start + RECORD_HEADER_BYTES as usize;
        let Some(body) = rest.get(body_start..body_start + len as usize) else { continue };
        if len > 0 && crc32fast::hash(body) == crc {
            return Ok(Some(bad + start as u64));
        }
    }
    Ok(None)
}

/// Reads the record at `offset`; `None` when there is no whole, intact record there.
fn read_record(file: &dyn LogFile, offset: u64, end: u64) -> io::Result<Option<Vec<u8>>> {
    if offset + RECORD_HEADER_BYTES > end {
        return Ok(None);
    }
    let mut header = [0u8; 8];
    file.read_at(offset, &mut header)?;
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    if len > RECORD_BYTES_MAX || offset + RECORD_HEADER_BYTES + u64::from(len) > end {
        return Ok(None);
    }
    let mut payload = vec![0u8; len as usize];
    file.read_at(offset + RECORD_HEADER_BYTES, &mut payload)?;
    if crc32fast::hash(&payload) != crc {
        return Ok(None);
    }
    Ok(Some(payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(file: &MemFile) -> Opened {
        BlockLog::open(Box::new(file.clone())).expect("opens")
    }

    #[test]
    fn appends_and_reopens() {
        let file = MemFile::default();
        let mut log = open(&file).log;
        log.append(b"first").unwrap();
        log.append(b"second").unwrap();
        assert_eq!(log.read(1).unwrap(), b"second");
        let reopened = open(&file);
        assert_eq!(reopened.records, vec![b"first".to_vec(), b"second".to_vec()]);
        assert_eq!(reopened.cut_bytes, 0);
    }

    #[test]
    fn torn_and_corrupt_tails_are_cut() {
        for damage in [3usize, 9, 12] {
            let file = MemFile::default();
            let mut log = open(&file).log;
            log.append(b"kept").unwrap();
            log.append(b"torn record").unwrap();
            let full = file.bytes.lock().unwrap().len();
            match damage {
                12 => file.bytes.lock().unwrap()[full - 1] ^= 0xff, // checksum mismatch
                n => file.bytes.lock().unwrap().truncate(full - n), // torn write
            }
            let reopened = open(&file);
            assert_eq!(reopened.records, vec![b"kept".to_vec()], "damage {damage}");
            assert!(reopened.cut_bytes > 0);
            let mut log = reopened.log;
            log.append(b"after").unwrap();
            assert_eq!(open(&file).records.len(), 2);
        }
    }

    #[test]
    fn damage_in_the_middle_is_refused_not_cut() {
        let file = MemFile::default();
        let mut log = open(&file).log;
        for record in [b"first record".as_slice(), b"second record", b"third record"] {
            log.append(record).unwrap();
        }
        let before = file.bytes.lock().unwrap().clone();
        file.bytes.lock().unwrap()[8 + 8 + 12 + 8 + 3] ^= 0x40; // inside the second payload
        let err = BlockLog::open(Box::new(file.clone())).err().expect("refused");
        assert!(err.to_string().contains("block 1"), "{err}");
        assert_eq!(file.bytes.lock().unwrap().len(), before.len(), "nothing was cut");
    }

    #[test]
    fn refuses_a_foreign_file() {
        let file = MemFile::default();
        file.bytes.lock().unwrap().extend_from_slice(b"not a log at all");
        assert!(BlockLog::open(Box::new(file)).is_err());
    }
}
