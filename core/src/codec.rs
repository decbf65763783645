//! Wire codec: an incremental decoder of line and bytes frames, their
//! meaning in each phase of a connection, and encoders for all of them
//! (PROTOCOL.md sections 1 and 3).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::Serialize;
use thiserror::Error;

use crate::{Addr, PeerId, ProtocolError};

/// Receive limits. A violation is a [`DecodeError`], never an allocation of
/// the announced size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest line accepted without `\n` (the `\n` excluded).
    pub max_line_len: usize,
    /// Largest `BYTES:` payload accepted.
    pub max_bytes_per_message: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line_len: 64 * 1024,
            max_bytes_per_message: 16 * 1024 * 1024,
        }
    }
}

/// A frame as it is on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A line, without its `\n` and with surrounding whitespace trimmed
    /// (as the reference does). Invalid UTF-8 is replaced, not rejected.
    Line(String),
    /// The payload of a `BYTES:<len>` frame.
    Bytes(Bytes),
}

/// Why a byte stream is not a valid frame sequence.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DecodeError {
    /// More than `max_line_len` bytes without `\n`.
    #[error("line longer than {limit} bytes")]
    LineTooLong {
        /// The limit.
        limit: usize,
    },
    /// `BYTES:` followed by something that is not a plain decimal.
    #[error("bad BYTES length {header:?}")]
    BadBytesLength {
        /// The header line, shortened.
        header: String,
    },
    /// `BYTES:` announcing more than `max_bytes_per_message`.
    #[error("BYTES length {len} exceeds the limit of {limit}")]
    BytesTooLarge {
        /// The announced length, as text (it may not fit any integer).
        len: String,
        /// The limit.
        limit: usize,
    },
}

/// Incremental decoder over a growing buffer.
///
/// Feed it whatever arrived, then call [`Decoder::next_frame`] until it
/// returns `Ok(None)`. Any split of the input into reads decodes the same.
/// After an error the decoder is poisoned and keeps returning that error.
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    /// Received data kept as it came, not copied yet. Invariant: at most one
    /// of `front` and `buf` is non-empty; the unconsumed input is whichever
    /// of them is.
    front: Bytes,
    /// Received data copied to be joined with later reads.
    buf: BytesMut,
    /// Bytes of `buf` already searched for `\n`, so that a long line that
    /// arrives in many reads is scanned once (no quadratic rescans).
    scanned: usize,
    /// Payload bytes still expected for a `BYTES` frame whose header was read.
    payload: Option<usize>,
    error: Option<DecodeError>,
}

impl Decoder {
    /// A decoder with these limits.
    pub fn new(limits: Limits) -> Self {
        Decoder {
            limits,
            front: Bytes::new(),
            buf: BytesMut::new(),
            scanned: 0,
            payload: None,
            error: None,
        }
    }

    /// Appends received bytes. When nothing is buffered the data is kept as
    /// is, so that payloads inside it come out without a copy.
    pub fn feed(&mut self, data: Bytes) {
        if self.error.is_some() || data.is_empty() {
            return;
        }
        if self.buf.is_empty() && self.front.is_empty() {
            self.front = data;
        } else {
            self.feed_slice(&data);
        }
    }

    /// Appends received bytes from a slice.
    pub fn feed_slice(&mut self, data: &[u8]) {
        if self.error.is_some() || data.is_empty() {
            return;
        }
        if !self.front.is_empty() {
            // More input is needed to finish the frame in `front`: only now
            // is its unconsumed tail copied.
            let front = std::mem::take(&mut self.front);
            self.buf.reserve(front.len() + data.len());
            self.buf.extend_from_slice(&front);
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame, `Ok(None)` if more input is needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, DecodeError> {
        if let Some(err) = &self.error {
            return Err(err.clone());
        }
        match self.decode() {
            Ok(frame) => Ok(frame),
            Err(err) => {
                self.error = Some(err.clone());
                // Nothing more will be decoded: let the memory go.
                self.front = Bytes::new();
                self.buf = BytesMut::new();
                self.scanned = 0;
                self.payload = None;
                Err(err)
            }
        }
    }

    /// Bytes held waiting for the rest of a frame. Never more than
    /// `max_line_len + 1` for a line, or the header plus
    /// `max_bytes_per_message` for a bytes frame, plus one read.
    pub fn buffered(&self) -> usize {
        self.front.len() + self.buf.len()
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The unconsumed input.
    fn data(&self) -> &[u8] {
        if self.buf.is_empty() {
            &self.front
        } else {
            &self.buf
        }
    }

    /// Drops `n` bytes of unconsumed input (`n <= buffered()`).
    fn consume(&mut self, n: usize) {
        if self.buf.is_empty() {
            self.front.advance(n);
        } else {
            self.buf.advance(n);
            self.release_if_empty();
        }
    }

    /// Takes `n` bytes of unconsumed input (`n <= buffered()`) without a
    /// copy.
    fn take(&mut self, n: usize) -> Bytes {
        if self.buf.is_empty() {
            self.front.split_to(n)
        } else {
            let out = self.buf.split_to(n).freeze();
            self.release_if_empty();
            out
        }
    }

    /// Once `buf` is drained, stops holding a large allocation (possibly
    /// shared with a payload handed out) for the next small frame.
    fn release_if_empty(&mut self) {
        const KEEP: usize = 64 * 1024;
        if self.buf.is_empty() && self.buf.capacity() > KEEP {
            self.buf = BytesMut::new();
        }
    }

    /// One decoding step; errors are recorded by the caller.
    fn decode(&mut self) -> Result<Option<Frame>, DecodeError> {
        loop {
            if let Some(len) = self.payload {
                if self.buffered() < len {
                    return Ok(None);
                }
                self.payload = None;
                return Ok(Some(Frame::Bytes(self.take(len))));
            }
            let max = self.limits.max_line_len;
            let data = self.data();
            // A `\n` beyond index `max` means a line that is too long anyway,
            // so never look further than that.
            #[cfg(not(p2p_planted = "decode-off-by-one"))]
            let window = data.len().min(max.saturating_add(1));
            // Planted: a line of exactly `max` bytes is not looked at whole.
            #[cfg(p2p_planted = "decode-off-by-one")]
            let window = data.len().min(max);
            let start = self.scanned.min(window);
            let found = data[start..window].iter().position(|&b| b == b'\n');
            let Some(pos) = found.map(|i| start + i) else {
                if data.len() > max {
                    return Err(DecodeError::LineTooLong { limit: max });
                }
                self.scanned = data.len();
                return Ok(None);
            };
            let line = String::from_utf8_lossy(&data[..pos]).trim().to_owned();
            self.consume(pos + 1);
            self.scanned = 0;
            match line.strip_prefix(BYTES_PREFIX) {
                Some(digits) => {
                    self.payload = Some(self.parse_len(&line, digits)?);
                }
                None => return Ok(Some(Frame::Line(line))),
            }
        }
    }

    /// The length of a `BYTES:<digits>` header, checked against the limit
    /// without overflowing whatever the number of digits.
    fn parse_len(&self, header: &str, digits: &str) -> Result<usize, DecodeError> {
        let limit = self.limits.max_bytes_per_message;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DecodeError::BadBytesLength {
                header: crate::truncate_for_report(header),
            });
        }
        let too_large = || DecodeError::BytesTooLarge {
            len: crate::truncate_for_report(digits),
            limit,
        };
        let mut len: usize = 0;
        for b in digits.bytes() {
            len = len
                .checked_mul(10)
                .and_then(|l| l.checked_add(usize::from(b - b'0')))
                .ok_or_else(too_large)?;
        }
        if len > limit {
            return Err(too_large());
        }
        Ok(len)
    }
}

const BYTES_PREFIX: &str = "BYTES:";
const PEERS_PREFIX: &str = "PEERS:";
const LISTEN_PREFIX: &str = "LISTEN:";
const PING: &str = "PING";
const PONG: &str = "PONG";
const REQUEST_PEERS: &str = "REQUEST_PEERS";
const DUPLICATE: &str = "DUPLICATE";
const MAX_PEERS: &str = "MAX_PEERS";

/// `PING\n`: every control line goes out as one of these constants or
/// through [`Message::encode`], so the codec knows every literal.
pub(crate) const PING_LINE: &[u8] = b"PING\n";
/// `PONG\n`.
pub(crate) const PONG_LINE: &[u8] = b"PONG\n";
/// `REQUEST_PEERS\n`.
pub(crate) const REQUEST_PEERS_LINE: &[u8] = b"REQUEST_PEERS\n";
/// `DUPLICATE\n`.
pub(crate) const DUPLICATE_LINE: &[u8] = b"DUPLICATE\n";
/// `MAX_PEERS\n`.
pub(crate) const MAX_PEERS_LINE: &[u8] = b"MAX_PEERS\n";

/// Most entries kept from one `PEERS:` line.
const MAX_PEERS_ENTRIES: usize = 1024;

/// Where a connection is, which decides what a line means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Listener before the hello: the line is `<id>:<name>`.
    AwaitHello,
    /// Dialer after sending its hello: `DUPLICATE`, `MAX_PEERS` or a hello.
    AwaitHelloReply,
    /// Listener right after the hello: a `LISTEN:` line, or (from a peer
    /// that sends none) an ordinary established line.
    AwaitListen,
    /// Handshake done: control lines and chat.
    Established,
}

/// A frame with its meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// `<id>:<name>`; `name` as sent (empty means "same as id").
    Hello {
        /// The id.
        id: PeerId,
        /// The name, possibly empty.
        name: String,
    },
    /// `LISTEN:<host>:<port>`, the address text as sent.
    Listen(String),
    /// `DUPLICATE`.
    Duplicate,
    /// `MAX_PEERS`.
    MaxPeers,
    /// `PING`.
    Ping,
    /// `PONG`.
    Pong,
    /// `REQUEST_PEERS`.
    RequestPeers,
    /// `PEERS:<a>,<b>,...`, entries trimmed, empty entries dropped.
    Peers(Vec<String>),
    /// Any other line. An empty chat line is `Chat("")`.
    Chat(String),
    /// A bytes frame.
    Bytes(Bytes),
}

impl Message {
    /// Interprets a frame in a phase.
    pub fn from_frame(frame: Frame, phase: Phase) -> Result<Message, ProtocolError> {
        match (phase, frame) {
            (Phase::AwaitHello | Phase::AwaitHelloReply, Frame::Bytes(_)) => {
                Err(ProtocolError::BytesBeforeHandshake)
            }
            (Phase::AwaitHello, Frame::Line(line)) => parse_hello(&line),
            (Phase::AwaitHelloReply, Frame::Line(line)) => match line.as_str() {
                DUPLICATE => Ok(Message::Duplicate),
                MAX_PEERS => Ok(Message::MaxPeers),
                _ => parse_hello(&line),
            },
            (Phase::AwaitListen, Frame::Line(line)) => match line.strip_prefix(LISTEN_PREFIX) {
                Some(addr) => Ok(Message::Listen(addr.trim().to_owned())),
                None => Ok(established(line)),
            },
            (Phase::AwaitListen | Phase::Established, Frame::Bytes(b)) => Ok(Message::Bytes(b)),
            (Phase::Established, Frame::Line(line)) => Ok(established(line)),
        }
    }

    /// Appends the wire form of the message.
    ///
    /// The caller ensures the message is encodable (see [`check_chat`] for
    /// chat); encoding then decoding gives the message back.
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Message::Hello { id, name } => {
                put_line(out, &[id.as_str(), ":", name]);
            }
            Message::Listen(addr) => put_line(out, &[LISTEN_PREFIX, addr]),
            Message::Duplicate => put_line(out, &[DUPLICATE]),
            Message::MaxPeers => put_line(out, &[MAX_PEERS]),
            Message::Ping => put_line(out, &[PING]),
            Message::Pong => put_line(out, &[PONG]),
            Message::RequestPeers => put_line(out, &[REQUEST_PEERS]),
            Message::Peers(entries) => {
                out.put_slice(PEERS_PREFIX.as_bytes());
                put_joined(out, entries.iter().map(String::as_str));
                out.put_u8(b'\n');
            }
            Message::Chat(text) => put_line(out, &[text]),
            Message::Bytes(payload) => {
                out.put_slice(&bytes_header(payload.len()));
                out.put_slice(payload);
            }
        }
    }

    /// The wire form as one buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }
}

/// Whether `text` can travel as a chat line and arrive unchanged: not
/// empty, no line break or other control character, no surrounding
/// whitespace, and not read as control by the receiver (`PING`, `PONG`,
/// `REQUEST_PEERS`, `PEERS:...`, `BYTES:...`, and in the handshake phases
/// `LISTEN:...`, `DUPLICATE`, `MAX_PEERS`). The error says why.
pub fn check_chat(text: &str) -> Result<(), &'static str> {
    if text.is_empty() {
        return Err("empty message");
    }
    if text.contains(['\n', '\r']) {
        return Err("contains a line break");
    }
    if text.chars().any(char::is_control) {
        return Err("contains a control character");
    }
    if text.trim() != text {
        return Err("leading or trailing whitespace would be trimmed");
    }
    if [PING, PONG, REQUEST_PEERS, DUPLICATE, MAX_PEERS].contains(&text) {
        return Err("it is a protocol control word");
    }
    if [PEERS_PREFIX, BYTES_PREFIX, LISTEN_PREFIX]
        .iter()
        .any(|p| text.starts_with(p))
    {
        return Err("it starts like a protocol control line (PEERS:, BYTES: or LISTEN:)");
    }
    Ok(())
}

/// The `BYTES:<len>\n` header of a bytes frame of `len` bytes.
pub fn bytes_header(len: usize) -> Bytes {
    Bytes::from(format!("{BYTES_PREFIX}{len}\n"))
}

/// `PEERS:<a>,<b>,...\n`.
pub fn peers_line(addrs: &[Addr]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_slice(PEERS_PREFIX.as_bytes());
    put_joined(&mut out, addrs.iter().map(Addr::as_str));
    out.put_u8(b'\n');
    out.freeze()
}

/// `<id>:<name>`, split at the first `:`.
fn parse_hello(line: &str) -> Result<Message, ProtocolError> {
    let invalid = || ProtocolError::InvalidHello {
        line: crate::truncate_for_report(line),
    };
    #[cfg(not(p2p_planted = "handshake-hello-without-colon"))]
    let (id, name) = line.split_once(':').ok_or_else(invalid)?;
    // Planted: any line is a hello, a line without `:` an id with no name.
    #[cfg(p2p_planted = "handshake-hello-without-colon")]
    let (id, name) = line.split_once(':').unwrap_or((line, ""));
    let id = PeerId::parse(id).map_err(|_| invalid())?;
    Ok(Message::Hello {
        id,
        name: name.to_owned(),
    })
}

/// The meaning of a line on an established connection.
fn established(line: String) -> Message {
    match line.as_str() {
        PING => Message::Ping,
        PONG => Message::Pong,
        REQUEST_PEERS => Message::RequestPeers,
        _ => match line.strip_prefix(PEERS_PREFIX) {
            Some(list) => Message::Peers(
                list.split(',')
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                    .take(MAX_PEERS_ENTRIES)
                    .map(str::to_owned)
                    .collect(),
            ),
            None => Message::Chat(line),
        },
    }
}

/// Appends the concatenation of `parts` and `\n`.
fn put_line(out: &mut BytesMut, parts: &[&str]) {
    for part in parts {
        out.put_slice(part.as_bytes());
    }
    out.put_u8(b'\n');
}

/// Appends `items` separated by `,`.
fn put_joined<'a>(out: &mut BytesMut, items: impl Iterator<Item = &'a str>) {
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        out.put_slice(item.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn small() -> Limits {
        Limits {
            max_line_len: 64,
            max_bytes_per_message: 256,
        }
    }

    /// Frames decoded and the error that stopped decoding, if any.
    type Outcome = (Vec<Frame>, Option<DecodeError>);

    /// Drains `dec` into `frames`; returns the error if it stopped there.
    fn drain(dec: &mut Decoder, frames: &mut Vec<Frame>) -> Option<DecodeError> {
        loop {
            match dec.next_frame() {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => return None,
                Err(e) => return Some(e),
            }
        }
    }

    /// Decodes `input` split at the given chunk lengths (the rest in one
    /// last read), alternating `feed` and `feed_slice`.
    fn decode_split(limits: Limits, input: &[u8], sizes: &[usize]) -> Outcome {
        let mut dec = Decoder::new(limits);
        let mut frames = Vec::new();
        let mut rest = input;
        let mut sizes = sizes.iter();
        let mut slice = false;
        while !rest.is_empty() {
            let n = sizes
                .next()
                .copied()
                .unwrap_or(rest.len())
                .clamp(1, rest.len());
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            if slice {
                dec.feed_slice(chunk);
            } else {
                dec.feed(Bytes::copy_from_slice(chunk));
            }
            slice = !slice;
            if let Some(e) = drain(&mut dec, &mut frames) {
                return (frames, Some(e));
            }
        }
        let err = drain(&mut dec, &mut frames);
        (frames, err)
    }

    fn decode_once(limits: Limits, input: &[u8]) -> Outcome {
        decode_split(limits, input, &[])
    }

    fn line(s: &str) -> Frame {
        Frame::Line(s.to_owned())
    }

    fn bytes_frame(b: &[u8]) -> Frame {
        Frame::Bytes(Bytes::copy_from_slice(b))
    }

    fn id(s: &str) -> PeerId {
        PeerId::parse(s).expect("valid test id")
    }

    // ---- framing ----

    #[test]
    fn lines_are_trimmed_and_crlf_works() {
        let (frames, err) = decode_once(Limits::default(), b"hello\r\n  spaced \t\n\n\r\nlast");
        assert_eq!(err, None);
        assert_eq!(
            frames,
            vec![line("hello"), line("spaced"), line(""), line("")]
        );
    }

    #[test]
    fn partial_line_then_several_lines_in_one_read() {
        let mut dec = Decoder::new(Limits::default());
        dec.feed(Bytes::from_static(b"hello wor"));
        assert_eq!(dec.next_frame(), Ok(None));
        dec.feed(Bytes::from_static(b"ld\nPING\nPONG\nx"));
        assert_eq!(dec.next_frame(), Ok(Some(line("hello world"))));
        assert_eq!(dec.next_frame(), Ok(Some(line("PING"))));
        assert_eq!(dec.next_frame(), Ok(Some(line("PONG"))));
        assert_eq!(dec.next_frame(), Ok(None));
        assert_eq!(dec.buffered(), 1);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let (frames, err) = decode_once(Limits::default(), b"a\xffb\n");
        assert_eq!(err, None);
        assert_eq!(frames, vec![line("a\u{fffd}b")]);
    }

    #[test]
    fn bytes_frames_decode() {
        let input = b"BYTES:3\nabcBYTES:0\nBYTES:007\n1234567 BYTES:2 \r\nxyafter\n";
        let (frames, err) = decode_once(Limits::default(), input);
        assert_eq!(err, None);
        assert_eq!(
            frames,
            vec![
                bytes_frame(b"abc"),
                bytes_frame(b""),
                bytes_frame(b"1234567"),
                bytes_frame(b"xy"),
                line("after"),
            ]
        );
    }

    #[test]
    fn payload_passes_newlines_and_headers_through() {
        let payload = b"line\nBYTES:99999999999999\nBYTES:-1\n\r\n";
        let mut input = bytes_header(payload.len()).to_vec();
        input.extend_from_slice(payload);
        input.extend_from_slice(b"PING\n");
        let (frames, err) = decode_once(small(), &input);
        assert_eq!(err, None);
        assert_eq!(frames, vec![bytes_frame(payload), line("PING")]);
        for i in 0..input.len() {
            assert_eq!(decode_split(small(), &input, &[i]), (frames.clone(), None));
        }
    }

    #[test]
    fn bad_bytes_lengths_are_typed_errors() {
        for header in [
            "BYTES:-1",
            "BYTES:",
            "BYTES: 5",
            "BYTES:+5",
            "BYTES:5 5",
            "BYTES:0x10",
            "BYTES:1.0",
            "BYTES:1e3",
            "BYTES:\u{ff15}",
        ] {
            let input = format!("{header}\nrest");
            let (frames, err) = decode_once(Limits::default(), input.as_bytes());
            assert!(frames.is_empty(), "{header}");
            assert_eq!(
                err,
                Some(DecodeError::BadBytesLength {
                    header: header.to_owned()
                }),
                "{header}"
            );
        }
        let long = format!("BYTES:{}x", "1".repeat(200));
        let (_, err) = decode_once(Limits::default(), format!("{long}\n").as_bytes());
        assert_eq!(
            err,
            Some(DecodeError::BadBytesLength {
                header: crate::truncate_for_report(&long)
            })
        );
    }

    #[test]
    fn oversized_bytes_lengths_are_typed_errors() {
        let limit = Limits::default().max_bytes_per_message;
        let forty = "9".repeat(40);
        let hundred = "1".repeat(100);
        let cases = [
            ("999999999999".to_owned(), "999999999999".to_owned()),
            (limit.saturating_add(1).to_string(), (limit + 1).to_string()),
            (forty.clone(), forty),
            (format!("000{}", usize::MAX), format!("000{}", usize::MAX)),
            (
                "184467440737095516160".to_owned(),
                "184467440737095516160".to_owned(),
            ),
            (hundred.clone(), crate::truncate_for_report(&hundred)),
        ];
        for (digits, reported) in cases {
            let input = format!("BYTES:{digits}\n");
            let (frames, err) = decode_once(Limits::default(), input.as_bytes());
            assert!(frames.is_empty());
            assert_eq!(
                err,
                Some(DecodeError::BytesTooLarge {
                    len: reported,
                    limit
                }),
                "{digits}"
            );
        }
    }

    #[test]
    fn bytes_at_the_limit_is_accepted() {
        let mut input = bytes_header(256).to_vec();
        input.extend(std::iter::repeat_n(7u8, 256));
        let (frames, err) = decode_once(small(), &input);
        assert_eq!(err, None);
        assert_eq!(frames, vec![bytes_frame(&[7u8; 256])]);
        let (_, err) = decode_once(small(), b"BYTES:257\n");
        assert_eq!(
            err,
            Some(DecodeError::BytesTooLarge {
                len: "257".into(),
                limit: 256
            })
        );
    }

    #[test]
    fn announced_size_is_not_allocated_up_front() {
        let mut dec = Decoder::new(Limits::default());
        dec.feed_slice(b"BYTES:16000000\nab");
        assert_eq!(dec.next_frame(), Ok(None));
        dec.feed_slice(b"cd");
        assert_eq!(dec.next_frame(), Ok(None));
        assert!(dec.buf.capacity() < 64 * 1024, "{}", dec.buf.capacity());
        assert_eq!(dec.buffered(), 4);
    }

    #[test]
    fn long_line_in_one_byte_reads_errors_once_over_the_limit() {
        let limits = Limits {
            max_line_len: 1000,
            max_bytes_per_message: 10,
        };
        let mut dec = Decoder::new(limits);
        for i in 0..limits.max_line_len {
            dec.feed(Bytes::from_static(b"a"));
            assert_eq!(dec.next_frame(), Ok(None), "byte {i}");
            assert!(dec.buffered() <= limits.max_line_len + 1);
        }
        dec.feed_slice(b"a");
        assert!(dec.buffered() <= limits.max_line_len + 1);
        let err = DecodeError::LineTooLong { limit: 1000 };
        assert_eq!(dec.next_frame(), Err(err.clone()));
        // Poisoned: same error, nothing more buffered.
        dec.feed_slice(b"\nPING\n");
        assert_eq!(dec.next_frame(), Err(err.clone()));
        assert_eq!(dec.next_frame(), Err(err));
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn long_line_with_default_limits_is_scanned_linearly() {
        // 64 KiB of 1-byte reads; quadratic rescans would take billions of
        // steps here.
        let limits = Limits::default();
        let mut dec = Decoder::new(limits);
        for _ in 0..limits.max_line_len {
            dec.feed_slice(b"x");
            assert_eq!(dec.next_frame(), Ok(None));
        }
        assert_eq!(dec.buffered(), limits.max_line_len);
        dec.feed_slice(b"x");
        assert_eq!(
            dec.next_frame(),
            Err(DecodeError::LineTooLong {
                limit: limits.max_line_len
            })
        );
    }

    #[test]
    fn long_line_in_one_read_errors() {
        let too_long = "a".repeat(65);
        for input in [
            too_long.clone(),
            format!("{too_long}\n"),
            format!("PING\n{too_long}"),
        ] {
            let (_, err) = decode_once(small(), input.as_bytes());
            assert_eq!(err, Some(DecodeError::LineTooLong { limit: 64 }), "{input}");
        }
        let (frames, _) = decode_once(small(), format!("PING\n{too_long}").as_bytes());
        assert_eq!(frames, vec![line("PING")]);
    }

    #[test]
    fn line_of_exactly_the_limit_is_accepted() {
        let max = "b".repeat(64);
        let input = format!("{max}\nPONG\n");
        let want = (vec![line(&max), line("PONG")], None);
        assert_eq!(decode_once(small(), input.as_bytes()), want);
        assert_eq!(decode_split(small(), input.as_bytes(), &[1; 100]), want);
    }

    #[test]
    fn payload_is_not_copied() {
        let payload = vec![0xabu8; 1024 * 1024];
        let mut wire = BytesMut::new();
        Message::Bytes(Bytes::from(payload.clone())).encode(&mut wire);
        wire.put_slice(b"PING\n");
        let wire = wire.freeze();
        let range = wire.as_ptr_range();
        let mut dec = Decoder::new(Limits::default());
        dec.feed(wire.clone());
        match dec.next_frame() {
            Ok(Some(Frame::Bytes(got))) => {
                assert_eq!(got.len(), payload.len());
                assert!(range.contains(&got.as_ptr()), "payload was copied");
                assert_eq!(got, payload);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(dec.next_frame(), Ok(Some(line("PING"))));
        assert_eq!(dec.next_frame(), Ok(None));
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn payload_across_reads_is_sliced_from_the_buffer() {
        let mut dec = Decoder::new(Limits::default());
        dec.feed(Bytes::from_static(b"BYTES:6\nabc"));
        assert_eq!(dec.next_frame(), Ok(None));
        assert_eq!(dec.buffered(), 3);
        dec.feed(Bytes::from_static(b"defBYTES:1\n"));
        assert_eq!(dec.next_frame(), Ok(Some(bytes_frame(b"abcdef"))));
        assert_eq!(dec.next_frame(), Ok(None));
        assert_eq!(dec.buffered(), 0);
        // With nothing buffered, a new read is kept as is.
        let tail = Bytes::from_static(b"zPONG\n");
        dec.feed(tail.clone());
        match dec.next_frame() {
            Ok(Some(Frame::Bytes(got))) => {
                assert_eq!(&got[..], b"z");
                assert_eq!(got.as_ptr(), tail.as_ptr());
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(dec.next_frame(), Ok(Some(line("PONG"))));
    }

    #[test]
    fn buffered_counts_held_bytes() {
        let mut dec = Decoder::new(Limits::default());
        assert_eq!(dec.buffered(), 0);
        dec.feed(Bytes::from_static(b"PING\nPO"));
        assert_eq!(dec.buffered(), 7);
        assert_eq!(dec.next_frame(), Ok(Some(line("PING"))));
        assert_eq!(dec.buffered(), 2);
        assert_eq!(dec.next_frame(), Ok(None));
        dec.feed_slice(b"NG");
        assert_eq!(dec.buffered(), 4);
        dec.feed(Bytes::new());
        dec.feed_slice(b"");
        assert_eq!(dec.buffered(), 4);
        assert_eq!(dec.limits(), Limits::default());
    }

    #[test]
    fn limits_are_the_ones_given() {
        assert_eq!(Decoder::new(small()).limits(), small());
    }

    #[test]
    fn a_poisoned_decoder_holds_no_new_input() {
        let mut dec = Decoder::new(small());
        dec.feed_slice(&[b'a'; 65]);
        let err = DecodeError::LineTooLong { limit: 64 };
        assert_eq!(dec.next_frame(), Err(err.clone()));
        dec.feed(Bytes::from_static(b"PING\n"));
        assert_eq!(dec.buffered(), 0);
        dec.feed_slice(b"PONG\n");
        assert_eq!(dec.buffered(), 0);
        assert_eq!(dec.next_frame(), Err(err));
    }

    #[test]
    fn joining_reads_reserves_only_what_they_hold() {
        let mut dec = Decoder::new(Limits::default());
        dec.feed(Bytes::from(vec![b'x'; 4000]));
        assert_eq!(dec.next_frame(), Ok(None));
        dec.feed_slice(&[b'y'; 4000]);
        assert_eq!(dec.buffered(), 8000);
        assert!(dec.buf.capacity() < 64 * 1024, "{}", dec.buf.capacity());
    }

    #[test]
    fn many_lines_joined_from_two_reads_all_decode() {
        // The joined buffer is far above the 64 KiB kept after draining; it
        // must not be dropped while lines remain in it.
        let mut dec = Decoder::new(Limits::default());
        dec.feed(Bytes::from_static(b"first "));
        assert_eq!(dec.next_frame(), Ok(None));
        let mut more = b"line\n".to_vec();
        for i in 0..200 {
            more.extend_from_slice(&[b'a' + (i % 26) as u8; 1000]);
            more.push(b'\n');
        }
        dec.feed_slice(&more);
        let mut frames = Vec::new();
        assert_eq!(drain(&mut dec, &mut frames), None);
        assert_eq!(frames.len(), 201);
        assert_eq!(frames[0], line("first line"));
        for (i, f) in frames[1..].iter().enumerate() {
            let want = String::from_utf8(vec![b'a' + (i % 26) as u8; 1000]).expect("ascii");
            assert_eq!(f, &Frame::Line(want), "line {i}");
        }
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn a_large_drained_buffer_is_released_and_a_small_one_kept() {
        // A 1 MiB payload in 1000-byte reads grows the buffer well past the
        // payload; once it is taken, the spare allocation is let go.
        let len = 1 << 20;
        let mut dec = Decoder::new(Limits::default());
        dec.feed_slice(&bytes_header(len));
        assert_eq!(dec.next_frame(), Ok(None));
        for _ in 0..len / 1000 {
            dec.feed_slice(&[1u8; 1000]);
            assert_eq!(dec.next_frame(), Ok(None));
        }
        dec.feed_slice(&vec![1u8; len % 1000]);
        match dec.next_frame() {
            Ok(Some(Frame::Bytes(b))) => assert_eq!(b.len(), len),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(dec.buffered(), 0);
        assert!(dec.buf.capacity() <= 64 * 1024, "{}", dec.buf.capacity());
        // A 10 kB line in 1000-byte reads leaves a few kB of spare room,
        // below the 64 KiB threshold: that allocation is kept for reuse.
        let mut dec = Decoder::new(Limits::default());
        for _ in 0..10 {
            dec.feed_slice(&[b'z'; 1000]);
            assert_eq!(dec.next_frame(), Ok(None));
        }
        dec.feed_slice(b"\n");
        assert_eq!(dec.next_frame(), Ok(Some(line(&"z".repeat(10_000)))));
        assert_eq!(dec.buffered(), 0);
        let spare = dec.buf.capacity();
        assert!(spare > 2 * 1024 && spare <= 64 * 1024, "{spare}");
    }

    // ---- meaning ----

    fn msg(phase: Phase, text: &str) -> Result<Message, ProtocolError> {
        Message::from_frame(line(text), phase)
    }

    #[test]
    fn hello_is_split_at_the_first_colon() {
        assert_eq!(
            msg(Phase::AwaitHello, "abc123:my:name"),
            Ok(Message::Hello {
                id: id("abc123"),
                name: "my:name".into()
            })
        );
        assert_eq!(
            msg(Phase::AwaitHello, "abc:"),
            Ok(Message::Hello {
                id: id("abc"),
                name: String::new()
            })
        );
    }

    #[test]
    fn invalid_hellos_are_rejected() {
        for bad in ["", "noColon", ":name", "a b:name", "PING"] {
            assert_eq!(
                msg(Phase::AwaitHello, bad),
                Err(ProtocolError::InvalidHello { line: bad.into() }),
                "{bad:?}"
            );
        }
        let long = format!("{}:x", "i".repeat(300));
        assert_eq!(
            msg(Phase::AwaitHello, &long),
            Err(ProtocolError::InvalidHello {
                line: crate::truncate_for_report(&long)
            })
        );
        let no_colon = "n".repeat(1000);
        match msg(Phase::AwaitHello, &no_colon) {
            Err(ProtocolError::InvalidHello { line }) => assert!(line.len() < 100),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn bytes_before_handshake_are_rejected() {
        for phase in [Phase::AwaitHello, Phase::AwaitHelloReply] {
            assert_eq!(
                Message::from_frame(bytes_frame(b"x"), phase),
                Err(ProtocolError::BytesBeforeHandshake)
            );
        }
        for phase in [Phase::AwaitListen, Phase::Established] {
            assert_eq!(
                Message::from_frame(bytes_frame(b"x"), phase),
                Ok(Message::Bytes(Bytes::from_static(b"x")))
            );
        }
    }

    #[test]
    fn hello_reply() {
        let p = Phase::AwaitHelloReply;
        assert_eq!(msg(p, "DUPLICATE"), Ok(Message::Duplicate));
        assert_eq!(msg(p, "MAX_PEERS"), Ok(Message::MaxPeers));
        assert_eq!(
            msg(p, "peer:Name"),
            Ok(Message::Hello {
                id: id("peer"),
                name: "Name".into()
            })
        );
        assert!(matches!(
            msg(p, "DUPLICATES"),
            Err(ProtocolError::InvalidHello { .. })
        ));
        assert!(matches!(
            msg(p, "PING"),
            Err(ProtocolError::InvalidHello { .. })
        ));
    }

    #[test]
    fn await_listen() {
        let p = Phase::AwaitListen;
        assert_eq!(
            msg(p, "LISTEN:10.0.0.1:9000"),
            Ok(Message::Listen("10.0.0.1:9000".into()))
        );
        assert_eq!(msg(p, "LISTEN:  h:1"), Ok(Message::Listen("h:1".into())));
        assert_eq!(msg(p, "LISTEN:"), Ok(Message::Listen(String::new())));
        assert_eq!(msg(p, "PING"), Ok(Message::Ping));
        assert_eq!(msg(p, "PEERS:a:1"), Ok(Message::Peers(vec!["a:1".into()])));
        assert_eq!(msg(p, "hi there"), Ok(Message::Chat("hi there".into())));
        assert_eq!(msg(p, "listen:x"), Ok(Message::Chat("listen:x".into())));
    }

    #[test]
    fn established_lines() {
        let p = Phase::Established;
        assert_eq!(msg(p, "PING"), Ok(Message::Ping));
        assert_eq!(msg(p, "PONG"), Ok(Message::Pong));
        assert_eq!(msg(p, "REQUEST_PEERS"), Ok(Message::RequestPeers));
        assert_eq!(
            msg(p, "PEERS: a:1 ,,b:2, ,"),
            Ok(Message::Peers(vec!["a:1".into(), "b:2".into()]))
        );
        assert_eq!(msg(p, "PEERS:"), Ok(Message::Peers(vec![])));
        assert_eq!(msg(p, ""), Ok(Message::Chat(String::new())));
        assert_eq!(msg(p, "ping"), Ok(Message::Chat("ping".into())));
        assert_eq!(msg(p, "PING!"), Ok(Message::Chat("PING!".into())));
        assert_eq!(msg(p, "DUPLICATE"), Ok(Message::Chat("DUPLICATE".into())));
        assert_eq!(msg(p, "LISTEN:h:1"), Ok(Message::Chat("LISTEN:h:1".into())));
        assert_eq!(msg(p, "id:name"), Ok(Message::Chat("id:name".into())));
    }

    #[test]
    fn peers_entries_are_capped() {
        let list: Vec<String> = (0..3000).map(|i| format!("h{i}:1")).collect();
        let text = format!("PEERS:{}", list.join(","));
        match msg(Phase::Established, &text) {
            Ok(Message::Peers(entries)) => {
                assert_eq!(entries.len(), MAX_PEERS_ENTRIES);
                assert_eq!(entries[..], list[..MAX_PEERS_ENTRIES]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    // ---- encoding ----

    #[test]
    fn encodes_every_message() {
        let cases: Vec<(Message, &[u8])> = vec![
            (
                Message::Hello {
                    id: id("abc"),
                    name: "n:m".into(),
                },
                b"abc:n:m\n",
            ),
            (
                Message::Hello {
                    id: id("abc"),
                    name: String::new(),
                },
                b"abc:\n",
            ),
            (Message::Listen("1.2.3.4:5".into()), b"LISTEN:1.2.3.4:5\n"),
            (Message::Duplicate, b"DUPLICATE\n"),
            (Message::MaxPeers, b"MAX_PEERS\n"),
            (Message::Ping, b"PING\n"),
            (Message::Pong, b"PONG\n"),
            (Message::RequestPeers, b"REQUEST_PEERS\n"),
            (
                Message::Peers(vec!["a:1".into(), "b:2".into()]),
                b"PEERS:a:1,b:2\n",
            ),
            (Message::Peers(vec![]), b"PEERS:\n"),
            (Message::Chat("hi".into()), b"hi\n"),
            (
                Message::Bytes(Bytes::from_static(b"a\nb")),
                b"BYTES:3\na\nb",
            ),
            (Message::Bytes(Bytes::new()), b"BYTES:0\n"),
        ];
        for (m, wire) in cases {
            assert_eq!(&m.to_bytes()[..], wire, "{m:?}");
            let mut out = BytesMut::from(&b"x"[..]);
            m.encode(&mut out);
            assert_eq!(&out[1..], wire, "append {m:?}");
        }
    }

    #[test]
    fn header_and_peers_helpers() {
        assert_eq!(&bytes_header(0)[..], b"BYTES:0\n");
        assert_eq!(&bytes_header(1234)[..], b"BYTES:1234\n");
        assert_eq!(&peers_line(&[])[..], b"PEERS:\n");
        let addrs = [
            Addr::parse("localhost:1").expect("addr"),
            Addr::parse("[::1]:2").expect("addr"),
        ];
        assert_eq!(&peers_line(&addrs)[..], b"PEERS:127.0.0.1:1,[::1]:2\n");
    }

    #[test]
    fn check_chat_rules() {
        for ok in [
            "hi",
            "hello world",
            "ping",
            "PING!",
            "a:b",
            "Ünïcödé ✓",
            "PEERS",
            "BYTES",
        ] {
            assert_eq!(check_chat(ok), Ok(()), "{ok:?}");
        }
        for bad in [
            "",
            "a\nb",
            "a\rb",
            "tab\there",
            "nul\0",
            "del\x7f",
            " lead",
            "trail ",
            "nbsp\u{a0}",
            "PING",
            "PONG",
            "REQUEST_PEERS",
            "DUPLICATE",
            "MAX_PEERS",
            "PEERS:a:1",
            "PEERS:",
            "BYTES:-1",
            "BYTES:5",
            "LISTEN:h:1",
        ] {
            let why = check_chat(bad).expect_err(bad);
            assert!(!why.is_empty());
        }
    }

    #[test]
    fn decode_errors_convert_and_display() {
        // DecodeError converts into ProtocolError for the caller.
        let e: ProtocolError = DecodeError::LineTooLong { limit: 3 }.into();
        assert_eq!(
            e,
            ProtocolError::Decode(DecodeError::LineTooLong { limit: 3 })
        );
        assert_eq!(
            DecodeError::BytesTooLarge {
                len: "9".into(),
                limit: 1
            }
            .to_string(),
            "BYTES length 9 exceeds the limit of 1"
        );
    }

    // ---- properties ----

    fn chat_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{1,40}",
            "[a-zA-Z0-9 :,.!?]{1,40}",
            Just("PEERS".to_owned()),
            Just("BYTES 5".to_owned()),
            Just("id:name".to_owned()),
        ]
        .prop_filter("must pass check_chat", |t| check_chat(t).is_ok())
    }

    fn addr_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9.-]{1,20}:[0-9]{1,5}",
            "\\[[0-9a-f:]{2,20}\\]:[0-9]{1,5}"
        ]
    }

    fn payload() -> impl Strategy<Value = Bytes> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..2048),
            // Payloads that look like frames.
            proptest::collection::vec(
                prop_oneof![
                    Just(b"\n".to_vec()),
                    Just(b"BYTES:".to_vec()),
                    Just(b"9".to_vec()),
                    Just(b"PING\r\n".to_vec())
                ],
                0..20
            )
            .prop_map(|parts| parts.concat()),
        ]
        .prop_map(Bytes::from)
    }

    fn established_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            Just(Message::Ping),
            Just(Message::Pong),
            Just(Message::RequestPeers),
            proptest::collection::vec(addr_text(), 0..8).prop_map(Message::Peers),
            chat_text().prop_map(Message::Chat),
            payload().prop_map(Message::Bytes),
        ]
    }

    fn encode_all(msgs: &[Message]) -> Vec<u8> {
        let mut out = BytesMut::new();
        for m in msgs {
            m.encode(&mut out);
        }
        out.to_vec()
    }

    fn interpret(frames: Vec<Frame>, phase: Phase) -> Vec<Message> {
        frames
            .into_iter()
            .map(|f| Message::from_frame(f, phase).expect("valid frame"))
            .collect()
    }

    /// Input chunks for the garbage properties: arbitrary bytes mixed with
    /// pieces of frames.
    fn garbage_chunk() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..100),
            Just(b"\n".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"BYTES:".to_vec()),
            "[0-9]{1,4}".prop_map(String::into_bytes),
            "[0-9 +-]{0,30}\n".prop_map(String::into_bytes),
            Just(vec![b'a'; 70]),
        ]
    }

    proptest! {
        #[test]
        fn prop_established_round_trip(msgs in proptest::collection::vec(established_message(), 0..12)) {
            let wire = encode_all(&msgs);
            let (frames, err) = decode_once(Limits::default(), &wire);
            prop_assert_eq!(err, None);
            prop_assert_eq!(interpret(frames, Phase::Established), msgs);
        }

        #[test]
        fn prop_hello_round_trip(
            id in "[!-9;-~]{1,40}",
            name in "\\PC{0,30}",
        ) {
            // An id of `BYTES` makes `BYTES:<digits>` a bytes header; the
            // wire cannot tell them apart.
            prop_assume!(id != "BYTES");
            prop_assume!(name.trim_end() == name);
            let m = Message::Hello { id: PeerId::parse(&id).expect("valid id"), name };
            let (frames, err) = decode_once(Limits::default(), &m.to_bytes());
            prop_assert_eq!(err, None);
            prop_assert_eq!(interpret(frames.clone(), Phase::AwaitHello), vec![m.clone()]);
            prop_assert_eq!(interpret(frames, Phase::AwaitHelloReply), vec![m]);
        }

        #[test]
        fn prop_listen_round_trip(addr in addr_text(), rest in proptest::collection::vec(established_message(), 0..4)) {
            let mut msgs = vec![Message::Listen(addr)];
            let wire = encode_all(&[msgs.clone(), rest.clone()].concat());
            msgs.extend(rest);
            let (frames, err) = decode_once(Limits::default(), &wire);
            prop_assert_eq!(err, None);
            prop_assert_eq!(interpret(frames, Phase::AwaitListen), msgs);
        }

        #[test]
        fn prop_any_split_decodes_the_same(
            msgs in proptest::collection::vec(established_message(), 0..8),
            sizes in proptest::collection::vec(1usize..300, 0..40),
        ) {
            let wire = encode_all(&msgs);
            let whole = decode_once(Limits::default(), &wire);
            prop_assert_eq!(&decode_split(Limits::default(), &wire, &sizes), &whole);
            prop_assert_eq!(&decode_split(Limits::default(), &wire, &vec![1; wire.len()]), &whole);
            prop_assert_eq!(whole.1, None);
            prop_assert_eq!(interpret(whole.0, Phase::Established), msgs);
        }

        #[test]
        fn prop_garbage_never_panics_and_stays_bounded(
            chunks in proptest::collection::vec(garbage_chunk(), 0..40),
            sizes in proptest::collection::vec(1usize..50, 0..40),
        ) {
            let limits = small();
            let bound = limits.max_line_len + limits.max_bytes_per_message + 32;
            let input = chunks.concat();
            let mut dec = Decoder::new(limits);
            let mut frames = Vec::new();
            let mut err = None;
            let mut rest = &input[..];
            let mut sizes = sizes.iter();
            while !rest.is_empty() {
                let n = sizes.next().copied().unwrap_or(rest.len()).clamp(1, rest.len());
                let (chunk, tail) = rest.split_at(n);
                rest = tail;
                dec.feed(Bytes::copy_from_slice(chunk));
                prop_assert!(dec.buffered() <= bound + chunk.len());
                let e = drain(&mut dec, &mut frames);
                prop_assert!(dec.buffered() <= bound);
                if let Some(e) = e {
                    err = Some(e);
                    break;
                }
            }
            if err.is_none() {
                err = drain(&mut dec, &mut frames);
            }
            if let Some(e) = &err {
                prop_assert_eq!(dec.next_frame(), Err(e.clone()));
            }
            // Any split of garbage decodes the same as well.
            let got = (frames, err);
            prop_assert_eq!(&decode_once(limits, &input), &got);
            prop_assert_eq!(&decode_split(limits, &input, &vec![1; input.len()]), &got);
            for frame in got.0 {
                for phase in [Phase::AwaitHello, Phase::AwaitHelloReply, Phase::AwaitListen, Phase::Established] {
                    let _ = Message::from_frame(frame.clone(), phase);
                }
            }
        }
    }
}
