//! The swarm frames (docs/PROTOCOL.md §9.2): `P2PX/swarm\n<kind> <fields>\n`
//! then, for `index`, `mani`, `have` and `chunk`, a binary or line body.
//! Every frame parses into a [`Msg`] or an error that names what was wrong;
//! a bad frame is ignored and the connection goes on.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec;
use crate::extensions::EXT_PREFIX;
use crate::file::check_name;

use super::manifest::ContentId;

/// The extension tag.
pub(crate) const TAG: &str = "swarm";

/// Most entries in one `index` frame.
pub(crate) const MAX_INDEX: usize = 1024;

/// One line of an `index` frame: content a peer offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) id: ContentId,
    pub(crate) size: u64,
    pub(crate) files: u32,
    /// Holds every chunk (or only some: a download in progress).
    pub(crate) complete: bool,
    pub(crate) name: String,
}

/// A swarm frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Msg {
    /// Everything the sender offers now (replaces what it said before).
    Index(Vec<Entry>),
    /// Asks for the manifest of `id`.
    ManifestGet(ContentId),
    /// The manifest of `id`.
    Manifest(ContentId, Bytes),
    /// Asks which chunks of `id` the receiver holds.
    HaveGet(ContentId),
    /// A bitfield of the chunks of `id` held, bit `k` of byte `k / 8` (MSB first).
    Have(ContentId, Bytes),
    /// Asks for chunk `k` of `id`.
    Get(ContentId, u32),
    /// Chunk `k` of `id`.
    Chunk(ContentId, u32, Bytes),
    /// The sender does not hold (or will not serve now) chunk `k`, or any
    /// of `id` (`None`).
    None(ContentId, Option<u32>),
    /// A request for chunk `k` is withdrawn (another peer sent it).
    Cancel(ContentId, u32),
    /// The sender offers `id` to the receiver.
    Offer(Entry),
    /// The sender declines an offer of `id`.
    Decline(ContentId),
}

/// `P2PX/swarm\n<head>\n` as a bytes frame header plus the prefix, to be
/// followed by `body_len` bytes sent separately.
fn head(head: &str, body_len: usize) -> BytesMut {
    let payload = EXT_PREFIX.len() + TAG.len() + 1 + head.len() + 1 + body_len;
    let h = codec::bytes_header(payload);
    let mut b = BytesMut::with_capacity(h.len() + payload - body_len);
    b.put_slice(&h);
    b.put_slice(EXT_PREFIX);
    b.put_slice(TAG.as_bytes());
    b.put_u8(b'\n');
    b.put_slice(head.as_bytes());
    b.put_u8(b'\n');
    b
}

fn entry_line(e: &Entry) -> String {
    format!(
        "{} {} {} {} {}",
        e.id,
        e.size,
        e.files,
        if e.complete { 'c' } else { 'p' },
        e.name
    )
}

impl Msg {
    /// The frame as buffers to transmit in order: a header, then the body
    /// shared with its source (a chunk is never copied).
    pub(crate) fn encode(&self) -> Vec<Bytes> {
        let with_body = |h: String, body: &Bytes| vec![head(&h, body.len()).freeze(), body.clone()];
        match self {
            Msg::Index(entries) => {
                let mut body = String::new();
                for e in entries {
                    body.push_str(&entry_line(e));
                    body.push('\n');
                }
                with_body("index".into(), &Bytes::from(body))
            }
            Msg::ManifestGet(id) => vec![head(&format!("mget {id}"), 0).freeze()],
            Msg::Manifest(id, m) => with_body(format!("mani {id}"), m),
            Msg::HaveGet(id) => vec![head(&format!("hget {id}"), 0).freeze()],
            Msg::Have(id, bits) => with_body(format!("have {id}"), bits),
            Msg::Get(id, k) => vec![head(&format!("get {id} {k}"), 0).freeze()],
            Msg::Chunk(id, k, data) => with_body(format!("chunk {id} {k}"), data),
            Msg::None(id, Some(k)) => vec![head(&format!("none {id} {k}"), 0).freeze()],
            Msg::None(id, None) => vec![head(&format!("none {id}"), 0).freeze()],
            Msg::Cancel(id, k) => vec![head(&format!("cancel {id} {k}"), 0).freeze()],
            Msg::Offer(e) => vec![head(&format!("offer {}", entry_line(e)), 0).freeze()],
            Msg::Decline(id) => vec![head(&format!("decline {id}"), 0).freeze()],
        }
    }

    /// Parses the body of a `P2PX/swarm` frame (after the tag line).
    pub(crate) fn parse(body: Bytes) -> Result<Msg, &'static str> {
        let end = body
            .iter()
            .take(1024)
            .position(|&b| b == b'\n')
            .ok_or("no head line")?;
        let headline = std::str::from_utf8(&body[..end]).map_err(|_| "head is not UTF-8")?;
        let rest = body.slice(end + 1..);
        let mut words = headline.splitn(2, ' ');
        let kind = words.next().unwrap_or("");
        let args = words.next().unwrap_or("");
        let no_body = |m: Msg| {
            if rest.is_empty() {
                Ok(m)
            } else {
                Err("unexpected body")
            }
        };
        match kind {
            "index" if args.is_empty() => parse_index(&rest).map(Msg::Index),
            "mget" => no_body(Msg::ManifestGet(id(args)?)),
            "mani" => Ok(Msg::Manifest(id(args)?, rest)),
            "hget" => no_body(Msg::HaveGet(id(args)?)),
            "have" => Ok(Msg::Have(id(args)?, rest)),
            "get" => {
                let (i, k) = id_chunk(args)?;
                no_body(Msg::Get(i, k))
            }
            "chunk" => {
                let (i, k) = id_chunk(args)?;
                Ok(Msg::Chunk(i, k, rest))
            }
            "none" => match args.split_once(' ') {
                Some(_) => {
                    let (i, k) = id_chunk(args)?;
                    no_body(Msg::None(i, Some(k)))
                }
                None => no_body(Msg::None(id(args)?, None)),
            },
            "cancel" => {
                let (i, k) = id_chunk(args)?;
                no_body(Msg::Cancel(i, k))
            }
            "offer" => no_body(Msg::Offer(parse_entry(args)?)),
            "decline" => no_body(Msg::Decline(id(args)?)),
            _ => Err("unknown swarm frame"),
        }
    }
}

fn id(s: &str) -> Result<ContentId, &'static str> {
    ContentId::parse(s).ok_or("bad content id")
}

fn num(s: &str) -> Result<u64, &'static str> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("bad number");
    }
    s.parse().map_err(|_| "bad number")
}

fn id_chunk(s: &str) -> Result<(ContentId, u32), &'static str> {
    let (i, k) = s.split_once(' ').ok_or("missing chunk index")?;
    let k = u32::try_from(num(k)?).map_err(|_| "chunk index out of range")?;
    Ok((id(i)?, k))
}

fn parse_entry(line: &str) -> Result<Entry, &'static str> {
    let mut f = line.splitn(5, ' ');
    let mut next = || f.next().ok_or("short index entry");
    let id = id(next()?)?;
    let size = num(next()?)?;
    let files = u32::try_from(num(next()?)?).map_err(|_| "file count out of range")?;
    let complete = match next()? {
        "c" => true,
        "p" => false,
        _ => return Err("bad holding flag"),
    };
    let name = next()?;
    check_name(name)?;
    Ok(Entry {
        id,
        size,
        files,
        complete,
        name: name.to_owned(),
    })
}

fn parse_index(body: &[u8]) -> Result<Vec<Entry>, &'static str> {
    let text = std::str::from_utf8(body).map_err(|_| "index is not UTF-8")?;
    let mut out = Vec::new();
    for line in text.lines() {
        if out.len() >= MAX_INDEX {
            return Err("index over 1024 entries");
        }
        out.push(parse_entry(line)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(parts: Vec<Bytes>) -> Bytes {
        let all: Vec<u8> = parts.concat();
        let nl = all.iter().position(|&b| b == b'\n').unwrap();
        let p = Bytes::from(all[nl + 1..].to_vec());
        p.slice(EXT_PREFIX.len() + TAG.len() + 1..)
    }

    #[test]
    fn every_frame_round_trips() {
        let id = ContentId([9; 32]);
        let e = Entry {
            id,
            size: 12,
            files: 3,
            complete: false,
            name: "my dir".into(),
        };
        for m in [
            Msg::Index(vec![
                e.clone(),
                Entry {
                    complete: true,
                    ..e.clone()
                },
            ]),
            Msg::Index(vec![]),
            Msg::ManifestGet(id),
            Msg::Manifest(id, Bytes::from_static(b"p2p-manifest/1\n")),
            Msg::HaveGet(id),
            Msg::Have(id, Bytes::from_static(&[0xf0, 1])),
            Msg::Get(id, 7),
            Msg::Chunk(id, u32::MAX, Bytes::from_static(b"data\nmore")),
            Msg::None(id, Some(3)),
            Msg::None(id, None),
            Msg::Cancel(id, 0),
            Msg::Offer(e.clone()),
            Msg::Decline(id),
        ] {
            assert_eq!(Msg::parse(payload(m.encode())), Ok(m.clone()), "{m:?}");
        }
        for bad in [
            &b"get 12 3\n"[..],
            b"get\n",
            b"chunk 0909 1\n",
            b"mget 0909090909090909090909090909090909090909090909090909090909090909\nx",
            b"offer 0909090909090909090909090909090909090909090909090909090909090909 1 1 c ../x\n",
            b"what\n",
            b"index",
        ] {
            assert!(Msg::parse(Bytes::copy_from_slice(bad)).is_err(), "{bad:?}");
        }
    }
}
