//! The `decode` target: arbitrary bytes in arbitrary read splits through
//! [`p2p_core::codec::Decoder`].
//!
//! Checks, for every input:
//! - the buffered bytes never exceed the limits (plus the read being fed),
//!   and drop to zero once the decoder failed;
//! - a failed decoder keeps returning its error and ignores more input;
//! - the frames and error do not depend on how the input was split;
//! - they equal what an independent, non-incremental reference decoder
//!   (written here from PROTOCOL.md section 1) finds in the whole input;
//! - every frame is well-formed (lines trimmed, payloads within the limit);
//! - re-encoding the frames and decoding again gives the same frames;
//! - in every connection phase, a frame that has a meaning keeps it through
//!   `Message::encode` and decoding again.

use bytes::{Bytes, BytesMut};
use p2p_core::codec::{bytes_header, DecodeError, Decoder, Frame, Limits, Message, Phase};

use crate::common::{Reader, Writer};

/// One `decode` input: limits, read sizes and the byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeInput {
    /// `max_line_len`; 255 means the default (64 KiB).
    pub max_line_len: u8,
    /// `max_bytes_per_message` in units of 8 bytes; 255 means the default
    /// (16 MiB).
    pub max_bytes: u8,
    /// Read sizes, used in turn until the stream is consumed: the low 7
    /// bits are the size (0 feeds an empty read), the high bit selects
    /// `feed_slice` instead of `feed`.
    pub reads: Vec<u8>,
    /// The stream.
    pub data: Vec<u8>,
}

impl DecodeInput {
    fn read(data: &[u8]) -> DecodeInput {
        let mut r = Reader::new(data);
        let max_line_len = r.u8();
        let max_bytes = r.u8();
        let reads = r.short_bytes();
        DecodeInput {
            max_line_len,
            max_bytes,
            reads,
            data: r.rest(),
        }
    }

    /// The raw bytes that [`check_decode`] reads as this input.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(self.max_line_len)
            .u8(self.max_bytes)
            .short_bytes(&self.reads)
            .raw(&self.data);
        w.out
    }

    fn limits(&self) -> Limits {
        let default = Limits::default();
        Limits {
            max_line_len: match self.max_line_len {
                255 => default.max_line_len,
                n => usize::from(n),
            },
            max_bytes_per_message: match self.max_bytes {
                255 => default.max_bytes_per_message,
                n => usize::from(n) * 8,
            },
        }
    }
}

/// What a `decode` input reached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeSummary {
    /// Line frames decoded.
    pub lines: usize,
    /// Bytes frames decoded.
    pub bytes_frames: usize,
    /// The error that stopped decoding, if any.
    pub error: Option<DecodeError>,
}

/// Frames decoded and the error that stopped decoding.
type Outcome = (Vec<Frame>, Option<DecodeError>);

/// Runs the `decode` checks on fuzzer bytes. Panics on a broken invariant.
pub fn check_decode(data: &[u8]) -> DecodeSummary {
    let input = DecodeInput::read(data);
    let limits = input.limits();
    let split = decode_split(limits, &input.data, &input.reads);
    let whole = decode_split(limits, &input.data, &[]);
    assert_eq!(split, whole, "decoding depends on the read split");

    let reference = reference_decode(limits, &input.data);
    assert_eq!(
        split.0, reference.0,
        "frames differ from the reference decoder"
    );
    assert_eq!(
        split.1.as_ref().map(std::mem::discriminant),
        reference.1.as_ref().map(std::mem::discriminant),
        "error differs from the reference decoder: {:?} vs {:?}",
        split.1,
        reference.1
    );
    if let Some(e) = &split.1 {
        // Both decoders stop at the same point; the limits they report
        // must be the configured ones.
        match e {
            DecodeError::LineTooLong { limit } => assert_eq!(*limit, limits.max_line_len),
            DecodeError::BytesTooLarge { limit, .. } => {
                assert_eq!(*limit, limits.max_bytes_per_message)
            }
            DecodeError::BadBytesLength { .. } => {}
        }
    }

    let (frames, error) = split;
    check_frames(limits, &frames);
    check_reencode(limits, &frames);
    for frame in &frames {
        check_meaning(frame);
    }
    DecodeSummary {
        lines: frames
            .iter()
            .filter(|f| matches!(f, Frame::Line(_)))
            .count(),
        bytes_frames: frames
            .iter()
            .filter(|f| matches!(f, Frame::Bytes(_)))
            .count(),
        error,
    }
}

/// The most a decoder may hold between reads: a line up to the limit, or
/// the rest of a payload up to the limit.
fn bound(limits: Limits) -> usize {
    limits.max_line_len.max(limits.max_bytes_per_message)
}

/// Decodes `input` in reads as `reads` says (cycled), checking the buffer
/// bounds and the poisoned state along the way.
fn decode_split(limits: Limits, input: &[u8], reads: &[u8]) -> Outcome {
    let mut dec = Decoder::new(limits);
    let mut frames = Vec::new();
    let mut rest = input;
    // Cycle through the sizes only if that makes progress.
    let cycle = reads.iter().any(|r| r & 0x7f != 0);
    let mut next = 0;
    while !rest.is_empty() {
        let (n, slice) = if next < reads.len() || cycle {
            let spec = reads[next % reads.len()];
            next += 1;
            (usize::from(spec & 0x7f).min(rest.len()), spec & 0x80 != 0)
        } else {
            (rest.len(), false)
        };
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        let before = dec.buffered();
        if slice {
            dec.feed_slice(chunk);
        } else {
            dec.feed(Bytes::copy_from_slice(chunk));
        }
        assert!(
            dec.buffered() <= before + chunk.len(),
            "feeding {} bytes grew the buffer from {before} to {}",
            chunk.len(),
            dec.buffered()
        );
        assert!(
            dec.buffered() <= bound(limits) + chunk.len(),
            "{} bytes buffered after a read of {} (limits {limits:?})",
            dec.buffered(),
            chunk.len()
        );
        if let Some(e) = drain(&mut dec, &mut frames) {
            check_poisoned(&mut dec, &e);
            return (frames, Some(e));
        }
        assert!(
            dec.buffered() <= bound(limits),
            "{} bytes buffered after draining (limits {limits:?})",
            dec.buffered()
        );
    }
    // Empty reads at the end change nothing.
    dec.feed(Bytes::new());
    dec.feed_slice(&[]);
    assert_eq!(dec.next_frame(), Ok(None), "an empty read made a frame");
    (frames, None)
}

fn drain(dec: &mut Decoder, frames: &mut Vec<Frame>) -> Option<DecodeError> {
    loop {
        match dec.next_frame() {
            Ok(Some(f)) => frames.push(f),
            Ok(None) => return None,
            Err(e) => return Some(e),
        }
    }
}

/// A failed decoder holds nothing, keeps its error and ignores input.
fn check_poisoned(dec: &mut Decoder, e: &DecodeError) {
    assert_eq!(dec.buffered(), 0, "a failed decoder still holds bytes");
    dec.feed(Bytes::from_static(b"PING\n"));
    dec.feed_slice(b"PING\n");
    assert_eq!(dec.buffered(), 0, "a failed decoder took more input");
    assert_eq!(dec.next_frame(), Err(e.clone()), "the error changed");
}

/// PROTOCOL.md section 1 read directly, on the whole input at once.
fn reference_decode(limits: Limits, input: &[u8]) -> Outcome {
    let max = limits.max_line_len;
    let mut frames = Vec::new();
    let mut pos = 0;
    loop {
        let rest = &input[pos..];
        let line_end = match rest.iter().position(|&b| b == b'\n') {
            Some(i) if i <= max => i,
            Some(_) => return (frames, Some(DecodeError::LineTooLong { limit: max })),
            None if rest.len() > max => {
                return (frames, Some(DecodeError::LineTooLong { limit: max }))
            }
            None => return (frames, None),
        };
        let text = String::from_utf8_lossy(&rest[..line_end]).trim().to_owned();
        pos += line_end + 1;
        let Some(digits) = text.strip_prefix("BYTES:") else {
            frames.push(Frame::Line(text));
            continue;
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            let header = String::new();
            return (frames, Some(DecodeError::BadBytesLength { header }));
        }
        let significant = digits.trim_start_matches('0');
        let len = match significant.len() {
            0 => Some(0),
            // At most 30 digits always fit a u128.
            1..=30 => significant.parse::<u128>().ok(),
            _ => None,
        };
        let len = match len {
            Some(l) if l <= limits.max_bytes_per_message as u128 => l as usize,
            _ => {
                let e = DecodeError::BytesTooLarge {
                    len: String::new(),
                    limit: limits.max_bytes_per_message,
                };
                return (frames, Some(e));
            }
        };
        if input.len() - pos < len {
            return (frames, None);
        }
        frames.push(Frame::Bytes(Bytes::copy_from_slice(&input[pos..pos + len])));
        pos += len;
    }
}

fn check_frames(limits: Limits, frames: &[Frame]) {
    for f in frames {
        match f {
            Frame::Line(text) => {
                assert_eq!(text.trim(), text, "line frame not trimmed");
                assert!(!text.contains('\n'), "line frame contains a newline");
                assert!(
                    !text.starts_with("BYTES:"),
                    "a bytes header came out as a line"
                );
                // Invalid UTF-8 is replaced by U+FFFD (3 bytes per byte at most).
                assert!(
                    text.len() <= limits.max_line_len.saturating_mul(3),
                    "line frame of {} bytes with a limit of {}",
                    text.len(),
                    limits.max_line_len
                );
            }
            Frame::Bytes(b) => assert!(
                b.len() <= limits.max_bytes_per_message,
                "payload of {} bytes over the limit",
                b.len()
            ),
        }
    }
}

fn encode_frame(f: &Frame, out: &mut BytesMut) {
    match f {
        Frame::Line(text) => {
            out.extend_from_slice(text.as_bytes());
            out.extend_from_slice(b"\n");
        }
        Frame::Bytes(b) => {
            out.extend_from_slice(&bytes_header(b.len()));
            out.extend_from_slice(b);
        }
    }
}

/// Limits that admit every frame in `frames` (a replaced invalid byte can
/// make a line longer than it was on the wire).
fn roomy(limits: Limits, frames: &[Frame]) -> Limits {
    let longest = frames
        .iter()
        .map(|f| match f {
            Frame::Line(t) => t.len(),
            Frame::Bytes(_) => 0,
        })
        .max()
        .unwrap_or(0);
    Limits {
        max_line_len: limits.max_line_len.max(longest).max(64),
        max_bytes_per_message: limits.max_bytes_per_message,
    }
}

fn check_reencode(limits: Limits, frames: &[Frame]) {
    let mut wire = BytesMut::new();
    for f in frames {
        encode_frame(f, &mut wire);
    }
    let (again, err) = decode_split(roomy(limits, frames), &wire, &[]);
    assert_eq!(err, None, "re-encoded frames do not decode");
    assert_eq!(again, frames, "re-encoded frames decode differently");
}

/// In every phase where the frame means something, the message survives
/// encoding and decoding.
fn check_meaning(frame: &Frame) {
    for phase in [
        Phase::AwaitHello,
        Phase::AwaitHelloReply,
        Phase::AwaitListen,
        Phase::Established,
    ] {
        let Ok(msg) = Message::from_frame(frame.clone(), phase) else {
            continue;
        };
        let wire = msg.to_bytes();
        let limits = Limits {
            max_line_len: wire.len(),
            max_bytes_per_message: wire.len(),
        };
        let (frames, err) = decode_split(limits, &wire, &[]);
        assert_eq!(err, None, "{msg:?} encodes to undecodable {wire:?}");
        assert_eq!(
            frames.len(),
            1,
            "{msg:?} encodes to {} frames",
            frames.len()
        );
        let back = Message::from_frame(frames[0].clone(), phase);
        assert_eq!(
            back,
            Ok(msg),
            "message changed through the wire in {phase:?}"
        );
    }
}
