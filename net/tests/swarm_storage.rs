//! The storage side of swarm sharing, on the disk and in memory: shares
//! hash to what the manifest says, the share cache is used exactly while
//! files are unchanged, links are not followed, changed sources are
//! reported, partial downloads claim exactly what was checkpointed, commits
//! never overwrite, hostile manifests are refused.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use p2p_core::{ContentId, Manifest};
use p2p_net::{DiskStorage, MemStorage, Storage};

/// Chunks of 16 KiB: small test files still span several, and chunks span
/// files.
const CS: u32 = 16 * 1024;

/// Deterministic bytes.
fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The tree every test shares: `(path below the top, bytes)`.
fn tree() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("a.txt", data(1, 1000)),
        ("sub/b.bin", data(2, 100_000)),
        ("sub/empty", Vec::new()),
        ("sub/deeper/c", data(3, 5000)),
        ("z", data(4, 16 * 1024)),
    ]
}

fn write_tree(dir: &Path, files: &[(&str, Vec<u8>)]) {
    for (rel, bytes) in files {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, bytes).unwrap();
    }
}

/// Sets the modification time of every file under `dir` to `t`.
fn set_mtimes(dir: &Path, t: SystemTime) {
    if dir.is_file() {
        fs::File::options()
            .write(true)
            .open(dir)
            .unwrap()
            .set_modified(t)
            .unwrap();
        return;
    }
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let ft = e.file_type().unwrap();
        // Links and sockets are left alone.
        if ft.is_dir() || ft.is_file() {
            set_mtimes(&e.path(), t);
        }
    }
}

fn an_hour_ago() -> SystemTime {
    SystemTime::now() - Duration::from_secs(3600)
}

/// The concatenation of `files` in manifest (path) order, as the manifest
/// of `top` lists them.
fn concat(top: &str, files: &[(&str, Vec<u8>)]) -> (Vec<String>, Vec<u8>) {
    let mut v: Vec<(String, &Vec<u8>)> = files
        .iter()
        .map(|(r, b)| (format!("{top}/{r}"), b))
        .collect();
    v.sort();
    let names = v.iter().map(|(n, _)| n.clone()).collect();
    let all = v.iter().flat_map(|(_, b)| b.iter().copied()).collect();
    (names, all)
}

/// Checks that `manifest` describes `all` and that `s` serves it.
fn check_served(s: &impl Storage, manifest: &Manifest, all: &[u8]) {
    assert_eq!(manifest.size(), all.len() as u64);
    assert_eq!(manifest.chunks() as usize, all.len().div_ceil(CS as usize));
    for k in 0..manifest.chunks() {
        let r = manifest.chunk_range(k);
        let want = &all[r.start as usize..r.end as usize];
        assert!(manifest.verify(k, want), "chunk {k} hash");
        let got = s.read_chunk(manifest.id(), k).expect("served");
        assert_eq!(&got[..], want, "chunk {k} served");
    }
    let e = s.read_chunk(manifest.id(), manifest.chunks()).unwrap_err();
    assert!(!e.changed, "past the end is not a change");
}

fn cache_entries(downloads: &Path) -> usize {
    fs::read_dir(downloads.join(".p2p/shares"))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".manifest")
            })
            .count()
        })
        .unwrap_or(0)
}

#[test]
fn disk_shares_a_file_and_a_tree_whose_chunks_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let s = DiskStorage::new(tmp.path().join("dl")).unwrap();
    let top = tmp.path().join("t");
    write_tree(&top, &tree());

    let bytes = s.share(&top, CS).unwrap();
    let m = Manifest::parse(&bytes).expect("canonical");
    assert_eq!(ContentId::of(&bytes), m.id());
    assert_eq!(m.name(), "t");
    let (names, all) = concat("t", &tree());
    let listed: Vec<_> = m.files().iter().map(|f| f.path.clone()).collect();
    assert_eq!(listed, names, "every file, empty ones too, in path order");
    check_served(&s, &m, &all);
    // Chunk 0 spans a.txt and sub/b.bin.
    assert!(m.segments(0).len() >= 2);

    // One file: its path is its name.
    let one = tmp.path().join("one.bin");
    fs::write(&one, data(9, 50_000)).unwrap();
    let m1 = Manifest::parse(&s.share(&one, CS).unwrap()).unwrap();
    assert_eq!(m1.files().len(), 1);
    assert_eq!(m1.files()[0].path, "one.bin");
    assert!(!m1.is_dir());
    check_served(&s, &m1, &data(9, 50_000));

    // An empty file shares as a manifest without chunks.
    let empty = tmp.path().join("nothing");
    fs::write(&empty, b"").unwrap();
    let me = Manifest::parse(&s.share(&empty, CS).unwrap()).unwrap();
    assert_eq!((me.size(), me.chunks()), (0, 0));

    // Unshared: not served any more.
    s.unshare(m1.id());
    assert_eq!(
        s.read_chunk(m1.id(), 0).unwrap_err().error.kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn disk_share_refusals_and_skips() {
    let tmp = tempfile::tempdir().unwrap();
    let dl = tmp.path().join("dl");
    let s = DiskStorage::new(&dl).unwrap();
    let e = s.share(&tmp.path().join("missing"), CS).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let empty = tmp.path().join("empty");
    fs::create_dir_all(empty.join("sub/subsub")).unwrap();
    assert_eq!(
        s.share(&empty, CS).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let file = tmp.path().join("f");
    fs::write(&file, b"x").unwrap();
    assert_eq!(
        s.share(&file, 100).unwrap_err().kind(),
        ErrorKind::InvalidInput,
        "chunk size out of range"
    );

    // Links are not followed, at the top or inside; special files and
    // names a manifest may not carry are skipped.
    let top = tmp.path().join("t");
    write_tree(&top, &tree());
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("secret"), b"not shared").unwrap();
    std::os::unix::fs::symlink(&outside, top.join("dirlink")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret"), top.join("filelink")).unwrap();
    std::os::unix::fs::symlink("nowhere", top.join("dangling")).unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(top.join("sock")).unwrap();
    fs::write(top.join("CON"), b"device name").unwrap();
    fs::write(top.join("a:b"), b"colon").unwrap();
    fs::write(top.join("x.part"), b"part suffix").unwrap();
    fs::create_dir_all(top.join("bad\\dir")).unwrap();
    fs::write(top.join("bad\\dir/inside"), b"under a bad name").unwrap();
    // Old enough to be cached: the cache entry lands in `dl/.p2p`.
    set_mtimes(&top, an_hour_ago());
    let m = Manifest::parse(&s.share(&top, CS).unwrap()).unwrap();
    let (names, all) = concat("t", &tree());
    let listed: Vec<_> = m.files().iter().map(|f| f.path.clone()).collect();
    assert_eq!(listed, names);
    check_served(&s, &m, &all);

    let link = tmp.path().join("toplink");
    std::os::unix::fs::symlink(&top, &link).unwrap();
    assert_eq!(
        s.share(&link, CS).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let only_links = tmp.path().join("only-links");
    fs::create_dir_all(&only_links).unwrap();
    std::os::unix::fs::symlink(outside.join("secret"), only_links.join("l")).unwrap();
    assert_eq!(
        s.share(&only_links, CS).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );

    // The storage's own folder is never shared, even inside a tree.
    assert_eq!(cache_entries(&dl), 1);
    write_tree(&dl, &[("got.txt", b"received".to_vec())]);
    assert_eq!(
        s.share(&dl.join(".p2p"), CS).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let m = Manifest::parse(&s.share(&dl, CS).unwrap()).unwrap();
    let listed: Vec<_> = m.files().iter().map(|f| f.path.as_str()).collect();
    assert_eq!(listed, ["dl/got.txt"]);
}

#[test]
fn disk_share_cache_is_used_while_sizes_and_times_match() {
    let tmp = tempfile::tempdir().unwrap();
    let dl = tmp.path().join("dl");
    let s = DiskStorage::new(&dl).unwrap();
    let top = tmp.path().join("t");
    write_tree(&top, &tree());

    // Files modified just now are hashed but not cached (a change within
    // the same timestamp tick would go unseen).
    let fresh = s.share(&top, CS).unwrap();
    assert_eq!(cache_entries(&dl), 0);

    let t0 = an_hour_ago();
    set_mtimes(&top, t0);
    let first = s.share(&top, CS).unwrap();
    assert_eq!(first, fresh, "same content, same manifest");
    assert_eq!(cache_entries(&dl), 1);

    // Change a byte but not the size, and put the time back: the cache
    // still matches, so the share must not have read the file (it returns
    // the old hashes).
    let a = top.join("a.txt");
    let mut changed = fs::read(&a).unwrap();
    changed[10] ^= 0xff;
    fs::write(&a, &changed).unwrap();
    set_mtimes(&a, t0);
    let again = s.share(&top, CS).unwrap();
    assert_eq!(again, first, "cache hit: nothing re-read");

    // A new time: hashed again, and the new manifest is the new content.
    set_mtimes(&a, t0 + Duration::from_secs(1));
    let rehashed = s.share(&top, CS).unwrap();
    assert_ne!(rehashed, first);
    let mut files = tree();
    files[0].1 = changed;
    let (_, all) = concat("t", &files);
    check_served(&s, &Manifest::parse(&rehashed).unwrap(), &all);

    // Another chunk size is another manifest, hashed anew.
    let other = s.share(&top, 32 * 1024).unwrap();
    assert_eq!(Manifest::parse(&other).unwrap().chunk_size(), 32 * 1024);

    // A file added to the tree: not the cached list, hashed again.
    set_mtimes(&top, t0);
    let before = s.share(&top, CS).unwrap();
    fs::write(top.join("new"), b"new file").unwrap();
    set_mtimes(&top, t0);
    let after = s.share(&top, CS).unwrap();
    assert_ne!(before, after);
    assert!(Manifest::parse(&after)
        .unwrap()
        .files()
        .iter()
        .any(|f| f.path == "t/new"));

    // A cache entry from another storage instance (a later run) is used.
    let s2 = DiskStorage::new(&dl).unwrap();
    let m = Manifest::parse(&s2.share(&top, CS).unwrap()).unwrap();
    assert_eq!(m.encode(), after);
}

#[test]
fn disk_changed_or_vanished_source_is_reported_as_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let s = DiskStorage::new(tmp.path().join("dl")).unwrap();
    let top = tmp.path().join("t");
    write_tree(&top, &tree());
    let m = Manifest::parse(&s.share(&top, CS).unwrap()).unwrap();
    assert!(s.read_chunk(m.id(), 0).is_ok());

    // Touched (same bytes, new time): changed.
    set_mtimes(&top.join("a.txt"), an_hour_ago());
    let e = s.read_chunk(m.id(), 0).unwrap_err();
    assert!(e.changed, "{e}");
    // Chunks that do not touch it are still served.
    let last = m.chunks() - 1;
    assert!(m.segments(last).iter().all(|(i, _, _)| *i != 0));
    assert!(s.read_chunk(m.id(), last).is_ok());

    // Grown, vanished, replaced by a link: changed.
    let m = Manifest::parse(&s.share(&top, CS).unwrap()).unwrap();
    let z = top.join("z");
    fs::write(&z, data(4, 16 * 1024 + 1)).unwrap();
    assert!(s.read_chunk(m.id(), last).unwrap_err().changed);
    let m = Manifest::parse(&s.share(&top, CS).unwrap()).unwrap();
    let last = m.chunks() - 1;
    fs::remove_file(&z).unwrap();
    assert!(s.read_chunk(m.id(), last).unwrap_err().changed);
    fs::write(tmp.path().join("elsewhere"), data(4, 16 * 1024 + 1)).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("elsewhere"), &z).unwrap();
    assert!(s.read_chunk(m.id(), last).unwrap_err().changed);
}

/// A storage under test and how to restart it (a new process on the same
/// disk, or a crash of the memory storage).
trait Harness {
    type S: Storage;
    fn source(&self) -> Self::S;
    /// Where `tree()` is shared from in `source()`.
    fn tree_path(&self) -> PathBuf;
    fn sink(&self) -> Self::S;
    fn restart(&self) -> Self::S;
    /// Overwrites the partial's record with garbage.
    fn corrupt_record(&self, content: ContentId);
}

struct Disk {
    tmp: tempfile::TempDir,
}

impl Disk {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        write_tree(&tmp.path().join("t"), &tree());
        Disk { tmp }
    }
    fn dl(&self) -> PathBuf {
        self.tmp.path().join("dl")
    }
}

impl Harness for Disk {
    type S = DiskStorage;
    fn source(&self) -> DiskStorage {
        DiskStorage::new(self.tmp.path().join("src-dl")).unwrap()
    }
    fn tree_path(&self) -> PathBuf {
        self.tmp.path().join("t")
    }
    fn sink(&self) -> DiskStorage {
        DiskStorage::new(self.dl()).unwrap()
    }
    fn restart(&self) -> DiskStorage {
        self.sink()
    }
    fn corrupt_record(&self, content: ContentId) {
        let p = self
            .dl()
            .join(".p2p/partial")
            .join(content.to_hex())
            .join("record");
        let mut rec = fs::read(&p).unwrap();
        // Same length, another id: not this content's record.
        rec[13] = if rec[13] == b'0' { b'1' } else { b'0' };
        fs::write(p, rec).unwrap();
    }
}

struct Mem {
    src: MemStorage,
    sink: MemStorage,
}

impl Mem {
    fn new() -> Self {
        let src = MemStorage::default();
        src.add_source_dir(
            "/home/u/t",
            tree().into_iter().map(|(r, b)| (r.to_owned(), b)).collect(),
        );
        Mem {
            src,
            sink: MemStorage::default(),
        }
    }
}

impl Harness for Mem {
    type S = MemStorage;
    fn source(&self) -> MemStorage {
        self.src.clone()
    }
    fn tree_path(&self) -> PathBuf {
        PathBuf::from("/home/u/t")
    }
    fn sink(&self) -> MemStorage {
        self.sink.clone()
    }
    fn restart(&self) -> MemStorage {
        self.sink.crash();
        self.sink.clone()
    }
    fn corrupt_record(&self, _content: ContentId) {
        unreachable!("memory records cannot be corrupt");
    }
}

/// A partial claims exactly the checkpointed chunks, across a close and a
/// restart; a commit lands under the name, serves the content, and leaves
/// no partial behind.
fn partial_cycle<H: Harness>(h: &H) -> (ContentId, String) {
    let src = h.source();
    let bytes = src.share(&h.tree_path(), CS).unwrap();
    let m = Manifest::parse(&bytes).unwrap();
    let (_, all) = concat("t", &tree());
    check_served(&src, &m, &all);
    let n = m.chunks();
    assert!(n >= 4, "{n}");
    let id = m.id();

    let s = h.sink();
    assert!(s.scan_partials().is_empty());
    assert_eq!(
        s.write_chunk(id, 0, &src.read_chunk(id, 0).unwrap())
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound,
        "not open"
    );
    assert!(s.open_partial(id, bytes.clone(), None).unwrap().is_empty());
    let chunk = |k: u32| src.read_chunk(id, k).unwrap();
    s.write_chunk(id, 0, &chunk(0)).unwrap();
    s.write_chunk(id, 2, &chunk(2)).unwrap();
    assert_eq!(
        s.write_chunk(id, 1, &chunk(1)[1..]).unwrap_err().kind(),
        ErrorKind::InvalidInput,
        "a chunk of the wrong length"
    );
    s.checkpoint(id).unwrap();
    s.write_chunk(id, 1, &chunk(1)).unwrap();
    // The partial serves what it holds (the core re-verifies claims so).
    assert_eq!(s.read_chunk(id, 2).unwrap(), chunk(2));
    s.close_partial(id);
    assert_eq!(
        s.read_chunk(id, 0).unwrap_err().error.kind(),
        ErrorKind::NotFound
    );

    // Reopened: the checkpointed chunks only, not chunk 1.
    assert_eq!(s.open_partial(id, bytes.clone(), None).unwrap(), vec![0, 2]);
    s.write_chunk(id, 1, &chunk(1)).unwrap();
    s.write_chunk(id, 3, &chunk(3)).unwrap();
    s.checkpoint(id).unwrap();
    s.write_chunk(id, 4 % n, &chunk(4 % n)).unwrap();
    // A restart (or crash) loses what was not checkpointed.
    let s = h.restart();
    assert_eq!(
        s.scan_partials(),
        vec![(bytes.clone(), None)],
        "the partial is found after a restart"
    );
    assert_eq!(
        s.open_partial(id, bytes.clone(), None).unwrap(),
        vec![0, 1, 2, 3]
    );
    for k in 0..4 {
        assert!(m.verify(k, &s.read_chunk(id, k).unwrap()), "chunk {k} kept");
    }
    for k in 4..n {
        s.write_chunk(id, k, &chunk(k)).unwrap();
    }
    let path = s.commit_download(id).unwrap();
    assert!(s.scan_partials().is_empty(), "no partial left");
    check_served(&s, &m, &all);
    (id, path)
}

#[test]
fn disk_partial_claims_exactly_the_checkpointed_chunks() {
    let h = Disk::new();
    let (id, path) = partial_cycle(&h);
    let committed = h.dl().join("t");
    assert_eq!(Path::new(&path), fs::canonicalize(&committed).unwrap());
    for (rel, bytes) in tree() {
        assert_eq!(fs::read(committed.join(rel)).unwrap(), bytes, "{rel}");
    }
    assert!(!h.dl().join(".p2p/partial").join(id.to_hex()).exists());
    // A later share of the committed tree reuses its cache entry: the same
    // manifest (its name is still `t`), without reading.
    let s = h.sink();
    assert_eq!(
        Manifest::parse(&s.share(&committed, CS).unwrap())
            .unwrap()
            .id(),
        id
    );
    assert_eq!(cache_entries(&h.dl()), 1);
}

#[test]
fn mem_partial_claims_exactly_the_checkpointed_chunks() {
    let h = Mem::new();
    let (id, path) = partial_cycle(&h);
    assert_eq!(path, "t");
    let files = h.sink.swarm_files();
    for (rel, bytes) in tree() {
        assert_eq!(&files[&format!("t/{rel}")][..], &bytes[..], "{rel}");
    }
    assert!(h.sink.partial_ids().is_empty());
    assert_eq!(h.sink.shared_ids(), vec![id]);
    // Shared again from where it was committed: the same content.
    let again = h.sink.share(Path::new("t"), CS).unwrap();
    assert_eq!(ContentId::of(&again), id);
}

#[test]
fn disk_corrupt_record_claims_nothing() {
    let h = Disk::new();
    let bytes = h.source().share(&h.tree_path(), CS).unwrap();
    let id = ContentId::of(&bytes);
    let src = h.source();
    src.share(&h.tree_path(), CS).unwrap();
    let s = h.sink();
    s.open_partial(id, bytes.clone(), None).unwrap();
    s.write_chunk(id, 1, &src.read_chunk(id, 1).unwrap())
        .unwrap();
    s.checkpoint(id).unwrap();
    s.close_partial(id);
    assert_eq!(s.open_partial(id, bytes.clone(), None).unwrap(), vec![1]);
    s.close_partial(id);
    h.corrupt_record(id);
    assert!(h
        .restart()
        .open_partial(id, bytes.clone(), None)
        .unwrap()
        .is_empty());
    let record = h.dl().join(".p2p/partial").join(id.to_hex()).join("record");
    for garbage in [&b""[..], b"p2p-record/1\n", b"\xff\xfe junk"] {
        fs::write(&record, garbage).unwrap();
        assert!(h
            .restart()
            .open_partial(id, bytes.clone(), None)
            .unwrap()
            .is_empty());
    }
    // The data was kept: the chunk is still there to re-verify.
    let s = h.restart();
    s.open_partial(id, bytes.clone(), None).unwrap();
    assert_eq!(s.read_chunk(id, 1).unwrap(), src.read_chunk(id, 1).unwrap());
}

#[test]
fn disk_partial_layout_and_scan() {
    let h = Disk::new();
    let src = h.source();
    let bytes = src.share(&h.tree_path(), CS).unwrap();
    let m = Manifest::parse(&bytes).unwrap();
    let id = m.id();
    let s = h.sink();
    let target = h.tmp.path().join("elsewhere").display().to_string();
    s.open_partial(id, bytes.clone(), Some(target.clone()))
        .unwrap();
    let root = h.dl().join(".p2p/partial").join(id.to_hex());
    assert_eq!(fs::read(root.join("manifest")).unwrap(), &bytes[..]);
    assert_eq!(fs::read_to_string(root.join("dir")).unwrap(), target);
    for f in m.files() {
        let meta = fs::metadata(root.join("data").join(&f.path)).unwrap();
        assert_eq!(meta.len(), f.size, "{} at its size", f.path);
    }
    s.write_chunk(id, 0, &src.read_chunk(id, 0).unwrap())
        .unwrap();
    s.checkpoint(id).unwrap();
    let rec = fs::read(root.join("record")).unwrap();
    let header = format!("p2p-record/1\n{}\n{}\n", id.to_hex(), m.chunks());
    assert_eq!(&rec[..header.len()], header.as_bytes());
    assert_eq!(rec.len(), header.len() + (m.chunks() as usize).div_ceil(8));
    assert_eq!(rec[header.len()], 0x80, "chunk 0 is the top bit");

    // Folders that are not partials, or whose manifest is not their id's,
    // are skipped.
    fs::create_dir_all(h.dl().join(".p2p/partial/zzz")).unwrap();
    let liar = h
        .dl()
        .join(".p2p/partial")
        .join(ContentId([7; 32]).to_hex());
    fs::create_dir_all(&liar).unwrap();
    fs::write(liar.join("manifest"), &bytes).unwrap();
    let upper = h.dl().join(".p2p/partial").join(id.to_hex().to_uppercase());
    fs::create_dir_all(&upper).unwrap();
    fs::write(upper.join("manifest"), &bytes).unwrap();
    assert_eq!(
        h.restart().scan_partials(),
        vec![(bytes.clone(), Some(target.clone()))]
    );

    // Reopened without a dir: the dir file goes.
    s.open_partial(id, bytes.clone(), None).unwrap();
    assert!(!root.join("dir").exists());
    assert_eq!(h.restart().scan_partials(), vec![(bytes.clone(), None)]);

    s.discard_partial(id).unwrap();
    assert!(!root.exists());
    assert!(h.restart().scan_partials().is_empty());
    assert_eq!(
        s.write_chunk(id, 0, &src.read_chunk(id, 0).unwrap())
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    s.discard_partial(id).unwrap();
}

/// A one-file manifest of `body` named `name`, and its bytes.
fn file_manifest(storage: &impl Storage, path: &Path) -> (Bytes, Manifest) {
    let bytes = storage.share(path, CS).unwrap();
    let m = Manifest::parse(&bytes).unwrap();
    (bytes, m)
}

/// Downloads everything of `id` from `src` into `s`, then commits.
fn download(src: &impl Storage, s: &impl Storage, bytes: &Bytes, dir: Option<String>) -> String {
    let id = ContentId::of(bytes);
    s.open_partial(id, bytes.clone(), dir).unwrap();
    let m = Manifest::parse(bytes).unwrap();
    for k in 0..m.chunks() {
        s.write_chunk(id, k, &src.read_chunk(id, k).unwrap())
            .unwrap();
    }
    s.commit_download(id).unwrap()
}

#[test]
fn disk_commit_never_overwrites_a_file_or_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let src = DiskStorage::new(tmp.path().join("src-dl")).unwrap();
    let dl = tmp.path().join("dl");
    let s = DiskStorage::new(&dl).unwrap();
    let body = data(5, 70_000);
    let file = tmp.path().join("f.bin");
    fs::write(&file, &body).unwrap();
    let (bytes, m) = file_manifest(&src, &file);

    fs::write(dl.join("f.bin"), b"the user's own").unwrap();
    let path = download(&src, &s, &bytes, None);
    assert!(path.ends_with("dl/f-(1).bin"), "{path}");
    assert_eq!(fs::read(dl.join("f.bin")).unwrap(), b"the user's own");
    assert_eq!(fs::read(dl.join("f-(1).bin")).unwrap(), body);
    check_served(&s, &m, &body);
    // A second download of the same takes the next name.
    let path = download(&src, &s, &bytes, None);
    assert!(path.ends_with("dl/f-(2).bin"), "{path}");

    // The committed copy is cached under its own name: a share of it is
    // the same chunks under `f-(1).bin`, without reading (a same-size
    // change under the recorded time goes unseen).
    let committed = dl.join("f-(1).bin");
    let t = fs::metadata(&committed).unwrap().modified().unwrap();
    let mut changed = body.clone();
    changed[0] ^= 1;
    fs::write(&committed, &changed).unwrap();
    set_mtimes(&committed, t);
    let shared = Manifest::parse(&s.share(&committed, CS).unwrap()).unwrap();
    assert_eq!(shared.files()[0].path, "f-(1).bin");
    assert_eq!(shared.hash(0), m.hash(0), "cached, not re-hashed");

    // A tree into a target directory that does not exist yet, twice, and
    // once more beside a directory of that name.
    let top = tmp.path().join("t");
    write_tree(&top, &tree());
    let (tbytes, tm) = file_manifest(&src, &top);
    let out = tmp.path().join("out/nested");
    let p1 = download(&src, &s, &tbytes, Some(out.display().to_string()));
    assert!(p1.ends_with("out/nested/t"), "{p1}");
    fs::write(out.join("t/a.txt"), b"edited by the user").unwrap();
    let p2 = download(&src, &s, &tbytes, Some(out.display().to_string()));
    assert!(p2.ends_with("out/nested/t-(1)"), "{p2}");
    assert_eq!(
        fs::read(out.join("t/a.txt")).unwrap(),
        b"edited by the user"
    );
    for (rel, b) in tree() {
        assert_eq!(fs::read(out.join("t-(1)").join(rel)).unwrap(), b, "{rel}");
    }
    assert_eq!(fs::metadata(out.join("t-(1)/sub/empty")).unwrap().len(), 0);
    let (_, all) = concat("t", &tree());
    check_served(&s, &tm, &all);
    // A file in the way of the name counts too.
    fs::write(out.join("t-(2)"), b"a file").unwrap();
    let p3 = download(&src, &s, &tbytes, Some(out.display().to_string()));
    assert!(p3.ends_with("out/nested/t-(3)"), "{p3}");
    assert!(fs::read_dir(dl.join(".p2p/partial"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn hostile_manifests_are_refused_by_open_partial() {
    let hostile = |path: &str| -> Bytes {
        let mut b =
            format!("p2p-manifest/1\nchunk-size 4096\nfiles 1\n3 {path}\nchunks 1\n").into_bytes();
        b.extend_from_slice(&p2p_core::chunk_hash(b"abc"));
        Bytes::from(b)
    };
    let good = hostile("ok.txt");
    assert!(Manifest::parse(&good).is_ok(), "the template is valid");
    let tmp = tempfile::tempdir().unwrap();
    let dl = tmp.path().join("a/dl");
    let disk = DiskStorage::new(&dl).unwrap();
    let mem = MemStorage::default();
    for path in [
        "../evil",
        "/etc/passwd",
        "a/../../evil",
        "CON",
        "a\\b",
        "x:y",
        "..",
    ] {
        let bytes = hostile(path);
        let id = ContentId::of(&bytes);
        let e = disk.open_partial(id, bytes.clone(), None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{path}");
        let e = mem.open_partial(id, bytes, None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{path}");
    }
    assert!(!tmp.path().join("a/evil").exists());
    assert!(!dl.join(".p2p/evil").exists());
    assert!(
        !dl.join(".p2p/partial").exists()
            || fs::read_dir(dl.join(".p2p/partial"))
                .unwrap()
                .next()
                .is_none()
    );
    // A valid manifest under another content's id.
    let e = disk
        .open_partial(ContentId([1; 32]), good.clone(), None)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let e = mem
        .open_partial(ContentId([1; 32]), good, None)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(mem.partial_ids().is_empty());
}

#[test]
fn mem_shares_like_the_disk_and_reports_changes() {
    let mem = MemStorage::default();
    // The same tree on the disk and in memory: the same manifest.
    let tmp = tempfile::tempdir().unwrap();
    let disk = DiskStorage::new(tmp.path().join("dl")).unwrap();
    write_tree(&tmp.path().join("t"), &tree());
    let from_disk = disk.share(&tmp.path().join("t"), CS).unwrap();
    let mut files: Vec<(String, Vec<u8>)> =
        tree().into_iter().map(|(r, b)| (r.to_owned(), b)).collect();
    files.push(("CON".into(), b"device name: skipped".to_vec()));
    mem.add_source_dir("/src/t", files);
    let bytes = mem.share(Path::new("/src/t"), CS).unwrap();
    assert_eq!(bytes, from_disk);
    let m = Manifest::parse(&bytes).unwrap();
    let (_, all) = concat("t", &tree());
    check_served(&mem, &m, &all);

    assert_eq!(
        mem.share(Path::new("/src/none"), CS).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    mem.add_source_dir("/src/empty", Vec::new());
    assert_eq!(
        mem.share(Path::new("/src/empty"), CS).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );

    // A lying peer: corrupt bytes, served without a change being seen.
    mem.add_source("/src/f.bin", data(6, 20_000));
    let (fbytes, fm) = file_manifest(&mem, Path::new("/src/f.bin"));
    assert_eq!(fm.files()[0].path, "f.bin");
    assert!(mem.corrupt_source("/src/f.bin"));
    let bad = mem.read_chunk(fm.id(), 0).unwrap();
    assert!(!fm.verify(0, &bad));
    // Or wrong in a chosen chunk only.
    let second = u64::from(CS) + 5;
    assert!(mem.corrupt_source_at("/src/f.bin", second));
    assert!(!fm.verify(1, &mem.read_chunk(fm.id(), 1).unwrap()));
    assert!(!mem.corrupt_source_at("/src/f.bin", 20_000));
    assert!(!mem.corrupt_source_at("/src/none", 0));
    // Replaced or removed: changed.
    mem.add_source("/src/f.bin", data(6, 20_000));
    assert!(mem.read_chunk(fm.id(), 0).unwrap_err().changed);
    let (_, fm) = file_manifest(&mem, Path::new("/src/f.bin"));
    assert_eq!(fm.encode(), fbytes, "same bytes, same manifest");
    assert!(mem.remove_source("/src/f.bin"));
    assert!(mem.read_chunk(fm.id(), 0).unwrap_err().changed);
    assert!(mem.read_chunk(m.id(), 0).is_ok());
    mem.unshare(m.id());
    assert!(!mem.read_chunk(m.id(), 0).unwrap_err().changed);
}

#[test]
fn mem_commit_never_overwrites() {
    let src = MemStorage::default();
    src.add_source("/src/f.bin", data(7, 30_000));
    let (bytes, m) = file_manifest(&src, Path::new("/src/f.bin"));
    let s = MemStorage::default();
    s.add_source("f.bin", b"in the way".to_vec());
    assert_eq!(download(&src, &s, &bytes, None), "f-(1).bin");
    assert_eq!(download(&src, &s, &bytes, None), "f-(2).bin");
    assert_eq!(download(&src, &s, &bytes, Some("sub".into())), "sub/f.bin");
    let files = s.swarm_files();
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        ["f-(1).bin", "f-(2).bin", "sub/f.bin"]
    );
    assert_eq!(&files["sub/f.bin"][..], &data(7, 30_000)[..]);
    check_served(&s, &m, &data(7, 30_000));

    // A crash drops the registry of shares and open partials, keeps the
    // partials and records.
    s.open_partial(m.id(), bytes.clone(), None).unwrap();
    s.write_chunk(m.id(), 0, &src.read_chunk(m.id(), 0).unwrap())
        .unwrap();
    s.checkpoint(m.id()).unwrap();
    s.crash();
    assert!(s.shared_ids().is_empty());
    assert_eq!(s.partial_ids(), vec![m.id()]);
    assert_eq!(
        s.checkpoint(m.id()).unwrap_err().kind(),
        ErrorKind::NotFound,
        "closed by the crash"
    );
    assert_eq!(
        s.open_partial(m.id(), bytes.clone(), None).unwrap(),
        vec![0]
    );
    s.discard_partial(m.id()).unwrap();
    assert!(s.partial_ids().is_empty());
}

#[test]
fn disk_remembers_what_it_shares_for_the_next_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dl = tmp.path().join("dl");
    let s = DiskStorage::new(&dl).unwrap();
    let top = tmp.path().join("t");
    write_tree(&top, &tree());
    let one = tmp.path().join("one.bin");
    fs::write(&one, data(9, 50_000)).unwrap();
    let canon = |p: &Path| fs::canonicalize(p).unwrap().display().to_string();
    assert!(s.scan_shares().is_empty(), "a fresh downloads dir");

    file_manifest(&s, &top);
    // A relative spelling is listed as its canonical path.
    let rel = PathBuf::from(format!("{}/../one.bin", top.display()));
    let (_, m1) = file_manifest(&s, &rel);
    let mut both = vec![canon(&top), canon(&one)];
    both.sort();
    // Another storage over the same directory: the next run.
    assert_eq!(DiskStorage::new(&dl).unwrap().scan_shares(), both);

    // Unshared: forgotten; a share that fails: forgotten too.
    s.unshare(m1.id());
    assert_eq!(
        DiskStorage::new(&dl).unwrap().scan_shares(),
        vec![canon(&top)]
    );
    let next = DiskStorage::new(&dl).unwrap();
    fs::rename(&top, tmp.path().join("moved")).unwrap();
    let listed = next.scan_shares();
    assert_eq!(listed.len(), 1);
    let e = next.share(Path::new(&listed[0]), CS).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(DiskStorage::new(&dl).unwrap().scan_shares().is_empty());

    // A committed download is served, so it is listed as well.
    let src = DiskStorage::new(tmp.path().join("src-dl")).unwrap();
    let (bytes, _) = file_manifest(&src, &one);
    let path = download(&src, &next, &bytes, None);
    assert_eq!(DiskStorage::new(&dl).unwrap().scan_shares(), vec![path]);

    // A list someone edited: lines that are not absolute paths are skipped.
    fs::write(dl.join(".p2p/shares.list"), "relative/x\n/abs/y\n\n").unwrap();
    assert_eq!(
        DiskStorage::new(&dl).unwrap().scan_shares(),
        vec!["/abs/y".to_owned()]
    );
}

#[test]
fn disk_commits_into_a_directory_on_another_file_system() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let Ok(other) = tempfile::tempdir_in("/dev/shm") else {
        eprintln!("skipped: no /dev/shm");
        return;
    };
    let dl = tmp.path().join("dl");
    let s = DiskStorage::new(&dl).unwrap();
    if fs::metadata(&dl).unwrap().dev() == fs::metadata(other.path()).unwrap().dev() {
        eprintln!("skipped: /dev/shm is on the same file system as the temp dir");
        return;
    }
    let src = DiskStorage::new(tmp.path().join("src-dl")).unwrap();
    let top = tmp.path().join("t");
    write_tree(&top, &tree());
    let (tree_bytes, _) = file_manifest(&src, &top);
    let one = tmp.path().join("one.bin");
    fs::write(&one, data(9, 50_000)).unwrap();
    let (one_bytes, _) = file_manifest(&src, &one);
    let target = other.path().join("incoming");
    let dir = Some(target.display().to_string());

    // A tree and a file, each twice: the second lands beside the first.
    for round in 0..2 {
        let got = download(&src, &s, &tree_bytes, dir.clone());
        let name = if round == 0 { "t" } else { "t-(1)" };
        assert_eq!(
            PathBuf::from(&got),
            fs::canonicalize(target.join(name)).unwrap()
        );
        for (rel, bytes) in tree() {
            assert_eq!(&fs::read(target.join(name).join(rel)).unwrap(), &bytes);
        }
        let got = download(&src, &s, &one_bytes, dir.clone());
        let name = if round == 0 { "one.bin" } else { "one-(1).bin" };
        assert_eq!(
            PathBuf::from(&got),
            fs::canonicalize(target.join(name)).unwrap()
        );
        assert_eq!(fs::read(&got).unwrap(), data(9, 50_000));
    }
    // Nothing staged is left, no partial either; and what landed is served.
    let mut left: Vec<_> = fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["one-(1).bin", "one.bin", "t", "t-(1)"]);
    assert_eq!(fs::read_dir(dl.join(".p2p/partial")).unwrap().count(), 0);
    let id = ContentId::of(&one_bytes);
    assert!(Manifest::parse(&one_bytes)
        .unwrap()
        .verify(0, &s.read_chunk(id, 0).unwrap()));

    // A copy left by a crash mid-copy is replaced, not taken for a name.
    let staging = target.join(format!(".p2p-incoming-{}", &id.to_hex()[..16]));
    fs::write(&staging, b"half a copy").unwrap();
    let got = download(&src, &s, &one_bytes, dir.clone());
    assert_eq!(fs::read(&got).unwrap(), data(9, 50_000));
    assert!(got.ends_with("one-(2).bin"), "{got}");
    assert!(!staging.exists());

    // A copy that fails half way (the tree's last file is gone) leaves no
    // staging behind, and the partial stays.
    let tid = ContentId::of(&tree_bytes);
    s.open_partial(tid, tree_bytes.clone(), dir.clone())
        .unwrap();
    let m = Manifest::parse(&tree_bytes).unwrap();
    for k in 0..m.chunks() {
        s.write_chunk(tid, k, &src.read_chunk(tid, k).unwrap())
            .unwrap();
    }
    let partial = dl.join(".p2p/partial").join(tid.to_hex());
    fs::remove_file(partial.join("data/t/z")).unwrap();
    let e = s.commit_download(tid).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let tstaging = target.join(format!(".p2p-incoming-{}", &tid.to_hex()[..16]));
    assert!(!tstaging.exists(), "a failed copy is removed");
    assert!(partial.join("manifest").exists(), "the partial is kept");
    assert!(!target.join("t-(2)").exists());
}
