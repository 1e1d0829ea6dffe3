//! The block log: the source of truth. An append-only file of records, one block per
//! record, after an 8-byte file magic. A block is acknowledged only after its record is
//! written and `fdatasync`ed. On open, a torn or corrupt last record (a crash mid-append)
//! is found and cut: it can only hold a block no client was told about.
//!
//! Format 2 (magic `machilg2`) frames each record as
//! `COBS(u32le(len) || u32le(crc32(payload)) || payload) || 0x00`. COBS output never
//! holds a 0x00 byte, so every 0x00 in the file ends a record and records start exactly
//! after the magic and after each 0x00: payload bytes, whatever they hold, are never at
//! a place a record can start, so they can never be taken for a record (docs/FORMAT.md
//! gives the argument). Format 1 (`machilg1`, `u32le(len) || u32le(crc) || payload`)
//! is still read; `convert_v1` rewrites such a file as format 2.
//!
//! The file sits behind the small `LogFile` trait so tests can run on memory and inject
//! faults.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The magic of the format this node writes.
pub(crate) const MAGIC: &[u8; 8] = b"machilg2";
/// The magic of format 1, which is read and converted, never written.
pub(crate) const MAGIC_V1: &[u8; 8] = b"machilg1";
/// `u32le(len) || u32le(crc)` before each payload (inside the stuffing in format 2).
const RECORD_HEADER_BYTES: u64 = 8;
/// Ends every format-2 record; the stuffing keeps it out of everything else.
const DELIMITER: u8 = 0x00;
/// How much of the log is read at a time when it is opened.
const READ_CHUNK_BYTES: u64 = 8 * 1024 * 1024;
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

/// A log file in memory whose appends or syncs fail while a switch is on: a disk that
/// fails and recovers, for tests of what the node acknowledges.
#[derive(Clone, Default)]
pub struct FaultyFile {
    pub inner: MemFile,
    pub fail_append: Arc<std::sync::atomic::AtomicBool>,
    pub fail_sync: Arc<std::sync::atomic::AtomicBool>,
}

impl LogFile for FaultyFile {
    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_at(offset, buf)
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.fail_append.load(std::sync::atomic::Ordering::SeqCst) {
            // A short write: half the bytes reach the file, then the disk fails.
            self.inner.append(&bytes[..bytes.len() / 2])?;
            return Err(io::Error::other("injected write failure"));
        }
        self.inner.append(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        if self.fail_sync.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(io::Error::other("injected fdatasync failure"));
        }
        self.inner.sync()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.inner.truncate(len)
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

/// The framing of a block log file, named by its magic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// `machilg1`: length and checksum before each payload; read only.
    V1,
    /// `machilg2`: byte-stuffed records, each ended by a 0x00 byte.
    V2,
}

pub struct BlockLog {
    file: Box<dyn LogFile>,
    format: LogFormat,
    /// Where each record starts; index = height.
    offsets: Vec<u64>,
    end: u64,
}

impl BlockLog {
    /// Opens a log, checking every record; cuts a bad tail. An empty file gets the magic
    /// of format 2.
    pub fn open(mut file: Box<dyn LogFile>) -> io::Result<Opened> {
        let len = file.size()?;
        let format = if len == 0 {
            file.append(MAGIC)?;
            file.sync()?;
            LogFormat::V2
        } else {
            let mut magic = [0u8; 8];
            file.read_at(0, &mut magic).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidData, "block log too short for its header")
            })?;
            match &magic {
                MAGIC => LogFormat::V2,
                MAGIC_V1 => LogFormat::V1,
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "not a machi block log (bad magic)",
                    ))
                }
            }
        };
        let len = file.size()?;
        let scanned = match format {
            LogFormat::V2 => scan_v2(file.as_ref(), len)?,
            LogFormat::V1 => scan_v1(file.as_ref(), len)?,
        };
        let Scanned { offsets, records, end, intact_after } = scanned;
        let cut_bytes = len - end;
        if let Some(found) = intact_after {
            // A torn append only ever damages the end; an intact record after the bad
            // one means the file was damaged in the middle. Cutting would throw away
            // acknowledged blocks, so refuse instead.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "block log is damaged at block {} (byte {end}): that record fails its length or \
                     checksum, but an intact record follows at byte {found}; refusing to cut \
                     acknowledged blocks",
                    records.len()
                ),
            ));
        }
        if cut_bytes > 0 {
            file.truncate(end)?;
        }
        Ok(Opened { log: BlockLog { file, format, offsets, end }, records, cut_bytes })
    }

    pub fn open_path(path: &Path) -> io::Result<Opened> {
        BlockLog::open(Box::new(DiskFile::open(path)?))
    }

    pub fn count(&self) -> u64 {
        self.offsets.len() as u64
    }

    pub fn format(&self) -> LogFormat {
        self.format
    }

    /// Where record `index` starts and where the next one does (or the end): a reader
    /// that must not hold the chain's lock copies these and calls `read_located`.
    pub(crate) fn locate(&self, index: u64) -> Option<(u64, u64)> {
        let i = usize::try_from(index).ok()?;
        let start = *self.offsets.get(i)?;
        Some((start, self.offsets.get(i + 1).copied().unwrap_or(self.end)))
    }

    /// Appends one record and syncs it. On error the log is cut back to where it was, so
    /// a failed block leaves nothing behind.
    pub fn append(&mut self, payload: &[u8]) -> io::Result<()> {
        if self.format == LogFormat::V1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a format-1 block log is only read; opening the data folder converts it to format 2",
            ));
        }
        let record = frame(payload)?;
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
        let (start, next) = self.locate(index).ok_or(io::ErrorKind::NotFound)?;
        read_located(self.file.as_ref(), self.format, start, next)
    }
}

/// Reads the record between `start` and `next` (from `BlockLog::locate`) from any handle
/// on the same file.
pub(crate) fn read_located(
    file: &dyn LogFile,
    format: LogFormat,
    start: u64,
    next: u64,
) -> io::Result<Vec<u8>> {
    let changed = || io::Error::new(io::ErrorKind::InvalidData, "block record changed on disk");
    match format {
        LogFormat::V1 => read_record(file, start, next)?.ok_or_else(changed),
        LogFormat::V2 => {
            let len = usize::try_from(next - start).map_err(|_| io::ErrorKind::InvalidData)?;
            let mut stuffed = vec![0u8; len];
            file.read_at(start, &mut stuffed)?;
            match stuffed.split_last() {
                Some((&DELIMITER, stuffed)) => unframe(stuffed).ok_or_else(changed),
                _ => Err(changed()),
            }
        }
    }
}

/// One format-2 record: the stuffed header and payload, then the delimiter.
fn frame(payload: &[u8]) -> io::Result<Vec<u8>> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|l| *l <= RECORD_BYTES_MAX)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "block record too large"))?;
    let mut header = [0u8; RECORD_HEADER_BYTES as usize];
    header[..4].copy_from_slice(&len.to_le_bytes());
    header[4..].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let mut record = Vec::with_capacity(payload.len() + payload.len() / 254 + 16);
    stuff(header.iter().chain(payload).copied(), &mut record);
    record.push(DELIMITER);
    Ok(record)
}

/// The payload of a whole stuffed record (without its delimiter), if it is intact.
fn unframe(stuffed: &[u8]) -> Option<Vec<u8>> {
    let (mut decoded, ends) = unstuff_walk(stuffed);
    let &(at, len) = ends.last()?;
    if at != stuffed.len() {
        return None;
    }
    decoded.truncate(len);
    intact(&decoded).then(|| decoded.split_off(RECORD_HEADER_BYTES as usize))
}

/// Whether decoded bytes are exactly one record: a header whose length is the payload's
/// and whose checksum matches it.
fn intact(decoded: &[u8]) -> bool {
    let Some((header, payload)) = decoded.split_first_chunk::<8>() else { return false };
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    len <= RECORD_BYTES_MAX && payload.len() == len as usize && crc32fast::hash(payload) == crc
}

/// COBS (consistent overhead byte stuffing, Cheshire and Baker 1999): each run of up to
/// 254 non-zero bytes is prefixed with its length plus one, and a 0x00 byte becomes the
/// end of a run, so the output holds no 0x00 byte.
fn stuff(bytes: impl Iterator<Item = u8>, out: &mut Vec<u8>) {
    let mut code_at = out.len();
    out.push(0);
    let mut code = 1u8;
    for byte in bytes {
        if byte != 0 {
            out.push(byte);
            code += 1;
        }
        if byte == 0 || code == 0xff {
            out[code_at] = code;
            code_at = out.len();
            out.push(0);
            code = 1;
        }
    }
    out[code_at] = code;
}

/// Decodes stuffed bytes from their start for as long as the runs fit: the decoded bytes,
/// and every point where a frame could end (after each run), with the decoded length a
/// frame ending there has.
fn unstuff_walk(stuffed: &[u8]) -> (Vec<u8>, Vec<(usize, usize)>) {
    let mut decoded = Vec::with_capacity(stuffed.len());
    let mut ends = Vec::new();
    let mut at = 0;
    while let Some(&code) = stuffed.get(at) {
        let code = usize::from(code);
        let Some(run) = stuffed.get(at + 1..at + code) else { break };
        if code == 0 || run.contains(&DELIMITER) {
            break;
        }
        decoded.extend_from_slice(run);
        at += code;
        ends.push((at, decoded.len()));
        if code < 0xff {
            decoded.push(0);
        }
    }
    (decoded, ends)
}

/// What scanning a log found: the whole, intact records, where they end, and where an
/// intact record starts after a damaged one, if anywhere.
struct Scanned {
    offsets: Vec<u64>,
    records: Vec<Vec<u8>>,
    end: u64,
    intact_after: Option<u64>,
}

/// Format 2: records end at each 0x00 byte. Reads the file in chunks.
fn scan_v2(file: &dyn LogFile, len: u64) -> io::Result<Scanned> {
    let mut offsets = Vec::new();
    let mut records = Vec::new();
    let mut buf = Vec::new();
    let mut buf_at = MAGIC.len() as u64;
    let mut read_to = buf_at;
    let mut pos = 0;
    loop {
        if let Some(zero) = buf[pos..].iter().position(|b| *b == DELIMITER) {
            let Some(payload) = unframe(&buf[pos..pos + zero]) else { break };
            offsets.push(buf_at + pos as u64);
            records.push(payload);
            pos += zero + 1;
            continue;
        }
        if read_to == len {
            break;
        }
        buf.drain(..pos);
        buf_at += pos as u64;
        pos = 0;
        let n = (len - read_to).min(READ_CHUNK_BYTES);
        let old = buf.len();
        buf.resize(old + n as usize, 0);
        file.read_at(read_to, &mut buf[old..])?;
        read_to += n;
    }
    let end = buf_at + pos as u64;
    let mut rest = vec![0u8; usize::try_from(len - end).map_err(|_| io::ErrorKind::InvalidData)?];
    file.read_at(end, &mut rest)?;
    let intact_after = intact_record_after_v2(&rest).map(|at| end + at as u64);
    Ok(Scanned { offsets, records, end, intact_after })
}

/// Where an intact record lies in `rest` (the bytes from the first record that is not
/// whole and intact to the end of the file), if anywhere. Candidates start only where a
/// record can start: at the damaged record's own start, and after each 0x00 byte, where
/// a candidate runs to the next 0x00. The damaged record's own start may also end at any
/// run end before the next 0x00, so a record whose delimiter was damaged is seen (its
/// shorter prefixes never pass: their length is not the one in the header), except when
/// it runs to the very end of the file: a torn append that lost only its delimiter.
fn intact_record_after_v2(rest: &[u8]) -> Option<usize> {
    let limit = rest.iter().position(|b| *b == DELIMITER).unwrap_or(rest.len());
    let (decoded, ends) = unstuff_walk(&rest[..limit]);
    if ends.iter().any(|&(at, len)| at != rest.len() && intact(&decoded[..len])) {
        return Some(0);
    }
    let mut start = limit + 1;
    while start < rest.len() {
        let next = rest[start..].iter().position(|b| *b == DELIMITER).map_or(rest.len(), |z| start + z);
        if next > start && unframe(&rest[start..next]).is_some() {
            return Some(start);
        }
        start = next + 1;
    }
    None
}

/// Format 1: `u32le(len) || u32le(crc) || payload` records.
fn scan_v1(file: &dyn LogFile, len: u64) -> io::Result<Scanned> {
    let mut offset = MAGIC_V1.len() as u64;
    let mut offsets = Vec::new();
    let mut records = Vec::new();
    while let Some(payload) = read_record(file, offset, len)? {
        offsets.push(offset);
        offset += RECORD_HEADER_BYTES + payload.len() as u64;
        records.push(payload);
    }
    let intact_after = if offset < len { intact_record_after(file, offset, len)? } else { None };
    Ok(Scanned { offsets, records, end: offset, intact_after })
}

/// Rewrites a format-1 log at `path` as format 2: the whole new file is written aside and
/// synced, the old one is kept as `PATH.v1` (a hard link), and the new one renamed into
/// place, so `path` is always one whole log. Returns the number of blocks converted, or
/// `None` when the file is not format 1.
pub(crate) fn convert_v1(path: &Path) -> io::Result<Option<usize>> {
    let mut magic = [0u8; 8];
    match File::open(path).and_then(|f| f.read_exact_at(&mut magic, 0)) {
        Ok(()) if &magic == MAGIC_V1 => {}
        _ => return Ok(None),
    }
    let opened = BlockLog::open(Box::new(DiskFile::open(path)?))?;
    let aside = path.with_extension("log.converting");
    let mut out = io::BufWriter::new(File::create(&aside)?);
    out.write_all(MAGIC)?;
    for record in &opened.records {
        out.write_all(&frame(record)?)?;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    let kept = path.with_extension("log.v1");
    if kept.exists() {
        std::fs::remove_file(&kept)?;
    }
    std::fs::hard_link(path, &kept)?;
    std::fs::rename(&aside, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(Some(opened.records.len()))
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
                12 => file.bytes.lock().unwrap()[full - 2] ^= 0xff, // checksum mismatch
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
        let second = find(&before, b"second record");
        let first_end = find(&before, b"first record") + 12;
        let cases: [(&str, usize, u8); 4] = [
            ("a flipped payload bit", second + 3, before[second + 3] ^ 0x40),
            ("a payload byte turned into a delimiter", second + 3, DELIMITER),
            ("the first record's delimiter damaged", first_end, 0x55),
            ("the second record's stuffing code damaged", second - 9, 0x03),
        ];
        for (what, at, value) in cases {
            let mut damaged = before.clone();
            damaged[at] = value;
            file.bytes.lock().unwrap().clone_from(&damaged);
            let err =
                BlockLog::open(Box::new(file.clone())).err().unwrap_or_else(|| panic!("{what}: refused"));
            assert!(err.to_string().contains("intact record follows"), "{what}: {err}");
            assert_eq!(*file.bytes.lock().unwrap(), damaged, "{what}: nothing was cut");
        }
    }

    /// The second-to-last record's delimiter damaged: both last records are whole
    /// apart from it, so this is damage, not a torn append.
    #[test]
    fn a_damaged_delimiter_before_the_last_record_is_refused() {
        let file = MemFile::default();
        let mut log = open(&file).log;
        for record in [b"first record".as_slice(), b"second record", b"third record"] {
            log.append(record).unwrap();
        }
        let third = find(&file.bytes.lock().unwrap(), b"third record");
        let delimiter = third - 9 - 1;
        assert_eq!(file.bytes.lock().unwrap()[delimiter], DELIMITER);
        file.bytes.lock().unwrap()[delimiter] = 0x01;
        let err = BlockLog::open(Box::new(file.clone())).err().expect("refused");
        assert!(err.to_string().contains("block 1"), "{err}");
    }

    fn find(haystack: &[u8], needle: &[u8]) -> usize {
        haystack.windows(needle.len()).position(|w| w == needle).expect("bytes in the log")
    }

    #[test]
    fn stuffing_holds_no_zero_and_round_trips() {
        // Vectors from Cheshire and Baker's paper (as listed in its Wikipedia article).
        let vectors: [(&[u8], &[u8]); 5] = [
            (&[0x00], &[0x01, 0x01]),
            (&[0x00, 0x00], &[0x01, 0x01, 0x01]),
            (&[0x11, 0x22, 0x00, 0x33], &[0x03, 0x11, 0x22, 0x02, 0x33]),
            (&[0x11, 0x22, 0x33, 0x44], &[0x05, 0x11, 0x22, 0x33, 0x44]),
            (&[0x11, 0x00, 0x00, 0x00], &[0x02, 0x11, 0x01, 0x01, 0x01]),
        ];
        for (plain, stuffed) in vectors {
            let mut out = Vec::new();
            stuff(plain.iter().copied(), &mut out);
            assert_eq!(out, stuffed, "{plain:02x?}");
        }
        for len in [0usize, 1, 253, 254, 255, 508, 509, 1_000] {
            for fill in [0u8, 1, 0xff] {
                let plain: Vec<u8> =
                    (0..len).map(|i| if i % 97 == 5 { 0 } else { fill.wrapping_add(i as u8) }).collect();
                let mut out = Vec::new();
                stuff(plain.iter().copied(), &mut out);
                assert!(!out.contains(&0), "len {len}");
                let (decoded, ends) = unstuff_walk(&out);
                let &(at, n) = ends.last().unwrap();
                assert_eq!((at, &decoded[..n]), (out.len(), &plain[..]), "len {len} fill {fill}");
            }
        }
    }

    #[test]
    fn a_format_1_log_is_read_not_appended_and_converted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blocks.log");
        let mut v1 = MAGIC_V1.to_vec();
        for payload in [b"first".as_slice(), b"second"] {
            v1.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            v1.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
            v1.extend_from_slice(payload);
        }
        std::fs::write(&path, &v1).unwrap();
        let opened = BlockLog::open_path(&path).unwrap();
        assert_eq!(opened.records, vec![b"first".to_vec(), b"second".to_vec()]);
        assert_eq!(opened.log.read(1).unwrap(), b"second");
        let mut log = opened.log;
        assert!(log.append(b"third").is_err(), "format 1 is not written");
        drop(log);

        assert_eq!(convert_v1(&path).unwrap(), Some(2));
        assert_eq!(std::fs::read(dir.path().join("blocks.log.v1")).unwrap(), v1, "the old file is kept");
        let opened = BlockLog::open_path(&path).unwrap();
        assert_eq!(opened.log.format(), LogFormat::V2);
        assert_eq!(opened.records, vec![b"first".to_vec(), b"second".to_vec()]);
        let mut log = opened.log;
        log.append(b"third").unwrap();
        assert_eq!(BlockLog::open_path(&path).unwrap().records.len(), 3);
        assert_eq!(convert_v1(&path).unwrap(), None, "already format 2");
    }

    /// Payload bytes that hold a whole record of either framing, as an invoice string
    /// can: a format-1 record, and a format-2 record between two delimiters.
    fn payload_with_a_fake_record() -> Vec<u8> {
        let fake = b"a fake block";
        let mut payload = b"invoice ".to_vec();
        payload.extend_from_slice(&(fake.len() as u32).to_le_bytes());
        payload.extend_from_slice(&crc32fast::hash(fake).to_le_bytes());
        payload.extend_from_slice(fake);
        payload.push(DELIMITER);
        payload.extend_from_slice(&frame(fake).unwrap());
        payload.extend_from_slice(b" and more of the invoice");
        payload
    }

    #[test]
    fn a_torn_record_whose_payload_holds_a_fake_record_is_cut() {
        let payload = payload_with_a_fake_record();
        let file = MemFile::default();
        let mut log = open(&file).log;
        log.append(b"kept").unwrap();
        let before = file.bytes.lock().unwrap().len();
        log.append(&payload).unwrap();
        let whole = file.bytes.lock().unwrap().clone();
        // Every torn append: any prefix of the record reached the disk.
        for len in before..whole.len() {
            file.bytes.lock().unwrap().clone_from(&whole[..len].to_vec());
            let reopened = BlockLog::open(Box::new(file.clone()))
                .unwrap_or_else(|e| panic!("torn at {len} of {}: {e}", whole.len()));
            assert_eq!(reopened.records, vec![b"kept".to_vec()], "torn at {len}");
            assert_eq!(file.bytes.lock().unwrap().len(), before, "torn at {len}: cut back");
        }
    }

    #[test]
    fn refuses_a_foreign_file() {
        let file = MemFile::default();
        file.bytes.lock().unwrap().extend_from_slice(b"not a log at all");
        assert!(BlockLog::open(Box::new(file)).is_err());
    }
}
