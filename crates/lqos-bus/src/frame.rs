//! Framing: a 4-byte big-endian length, then a JSON envelope `{ "version": 1, "body": … }`.
//! JSON keeps the bus debuggable (`socat`) and tolerant of added fields.
//!
//! A frame's payload is read in [`READ_CHUNK`] pieces: the buffer grows with the bytes that
//! actually arrived, never with the length a peer announced, so a peer that announces 64 MiB
//! and sends nothing costs one chunk, not 64 MiB.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{BusError, PROTOCOL_VERSION};

/// Largest frame accepted in either direction (64 MiB, enough for 100k mappings).
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    version: u16,
    body: T,
}

/// Encodes `body` into a complete frame (length prefix included).
pub fn encode<T: Serialize>(body: &T) -> Result<Vec<u8>, BusError> {
    let env = Envelope { version: PROTOCOL_VERSION, body };
    let mut out = vec![0u8; 4];
    serde_json::to_writer(&mut out, &env).map_err(|source| BusError::Encode { source })?;
    let len = out.len() - 4;
    if len > MAX_FRAME {
        return Err(BusError::FrameTooLarge { len });
    }
    out[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out)
}

/// Decodes a frame payload (without the length prefix).
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, BusError> {
    #[derive(Deserialize)]
    struct VersionOnly {
        version: u16,
    }
    let v: VersionOnly =
        serde_json::from_slice(payload).map_err(|source| BusError::Decode { source })?;
    if v.version != PROTOCOL_VERSION {
        return Err(BusError::VersionMismatch { ours: PROTOCOL_VERSION, theirs: v.version });
    }
    let env: Envelope<T> =
        serde_json::from_slice(payload).map_err(|source| BusError::Decode { source })?;
    Ok(env.body)
}

/// Largest request a client may send to lqosd (commands are small; answers may be large).
pub const MAX_REQUEST_FRAME: usize = 4 * 1024 * 1024;

/// Bytes read per step while a payload arrives.
pub const READ_CHUNK: usize = 64 * 1024;

/// Reads the 4-byte length prefix and checks it against [`MAX_FRAME`].
pub fn frame_len(prefix: [u8; 4]) -> Result<usize, BusError> {
    frame_len_limited(prefix, MAX_FRAME)
}

/// Reads the 4-byte length prefix and checks it against `limit`.
pub fn frame_len_limited(prefix: [u8; 4], limit: usize) -> Result<usize, BusError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > limit {
        return Err(BusError::FrameTooLarge { len });
    }
    Ok(len)
}

/// Blocking: reads exactly `len` payload bytes into `buf` (cleared first) through a
/// [`READ_CHUNK`] scratch buffer, so `buf` grows only with the bytes the peer really sent
/// (its capacity stays within twice that), never with the length it announced.
pub fn read_payload(r: &mut impl Read, len: usize, buf: &mut Vec<u8>) -> Result<(), BusError> {
    buf.clear();
    let mut scratch = vec![0u8; READ_CHUNK.min(len)];
    while buf.len() < len {
        let want = (len - buf.len()).min(scratch.len());
        let n = loop {
            match r.read(&mut scratch[..want]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(BusError::Io { source }),
            }
        };
        if n == 0 {
            return Err(BusError::Io {
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("frame ended after {} of {len} bytes", buf.len()),
                ),
            });
        }
        buf.extend_from_slice(&scratch[..n]);
    }
    Ok(())
}

/// Blocking: reads one frame and decodes it. `Ok(None)` on a clean end of stream.
pub fn read_frame<T: DeserializeOwned>(r: &mut impl Read) -> Result<Option<T>, BusError> {
    let mut prefix = [0u8; 4];
    match r.read_exact(&mut prefix) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(source) => return Err(BusError::Io { source }),
    }
    let len = frame_len(prefix)?;
    let mut buf = Vec::new();
    read_payload(r, len, &mut buf)?;
    decode(&buf).map(Some)
}

/// Blocking: encodes and writes one frame.
pub fn write_frame<T: Serialize>(w: &mut impl Write, body: &T) -> Result<(), BusError> {
    let bytes = encode(body)?;
    w.write_all(&bytes).map_err(|source| BusError::Io { source })?;
    w.flush().map_err(|source| BusError::Io { source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Command, ReloadMode, Response};

    #[test]
    fn command_round_trips_through_a_frame() {
        let cmd = Command::Reload { mode: ReloadMode::Incremental };
        let bytes = encode(&cmd).expect("encode");
        let mut cursor = std::io::Cursor::new(bytes);
        let back: Command = read_frame(&mut cursor).expect("read").expect("one frame");
        assert_eq!(back, cmd);
        let none: Option<Command> = read_frame(&mut cursor).expect("eof");
        assert!(none.is_none());
    }

    #[test]
    fn other_protocol_version_is_refused_by_name() {
        let payload = br#"{"version":99,"body":{"response":"pong"}}"#;
        let err = decode::<Response>(payload).expect_err("must refuse");
        assert!(matches!(err, BusError::VersionMismatch { ours: 1, theirs: 99 }), "{err}");
    }

    #[test]
    fn oversized_length_prefix_is_refused_before_allocating() {
        let err = frame_len((MAX_FRAME as u32 + 1).to_be_bytes()).expect_err("too big");
        assert!(matches!(err, BusError::FrameTooLarge { .. }));
    }

    /// A reader that hands out `data` in the given chunk sizes (as a socket would), then EOF.
    struct Chunked {
        data: Vec<u8>,
        pos: usize,
        sizes: Vec<usize>,
        step: usize,
    }

    impl Read for Chunked {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let size = self.sizes.get(self.step % self.sizes.len().max(1)).copied().unwrap_or(1);
            self.step += 1;
            let n = size.max(1).min(buf.len()).min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    /// 64 cases unless `PROPTEST_CASES` asks for more (the long run:
    /// `PROPTEST_CASES=100000 cargo test --release -p lqos-bus fuzz_`).
    fn budget() -> proptest::test_runner::Config {
        let mut c = proptest::test_runner::Config::default();
        if std::env::var_os("PROPTEST_CASES").is_none() {
            c.cases = 64;
        }
        c.failure_persistence = None;
        c
    }

    fn any_command() -> impl proptest::strategy::Strategy<Value = Command> {
        use proptest::prelude::*;
        prop_oneof![
            Just(Command::Ping),
            Just(Command::Status),
            Just(Command::ClearTree),
            any::<usize>().prop_map(|n| Command::TopCircuits { n }),
            proptest::option::of("\\PC{0,40}")
                .prop_map(|circuit| Command::CircuitStats { circuit }),
            ("\\PC{0,40}", "\\PC{0,40}").prop_map(|(phase, integration)| {
                Command::SchedulerReport(crate::SchedulerState {
                    phase,
                    integration,
                    ..Default::default()
                })
            }),
        ]
    }

    proptest::proptest! {
        #![proptest_config(budget())]

        // Invariant: decoding arbitrary bytes never panics; it returns a value or an error.
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode::<Command>(&bytes);
            let _ = decode::<Response>(&bytes);
            let mut cursor = std::io::Cursor::new(bytes);
            let _ = read_frame::<Command>(&mut cursor);
        }

        // Invariant: a stream of valid frames, cut into arbitrary chunks and followed by any
        // bytes, yields the frames in order and then an error or the end; never a panic.
        #[test]
        fn fuzz_frames_survive_any_chunking(
            cmds in proptest::collection::vec(any_command(), 0..6),
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            sizes in proptest::collection::vec(1usize..300, 1..8),
        ) {
            let mut data = Vec::new();
            for c in &cmds {
                data.extend(encode(c).expect("encode"));
            }
            data.extend(&tail);
            let mut r = Chunked { data, pos: 0, sizes, step: 0 };
            for c in &cmds {
                let back: Option<Command> = read_frame(&mut r).expect("valid frame");
                proptest::prop_assert_eq!(back.as_ref(), Some(c));
            }
            let _ = read_frame::<Command>(&mut r);
        }

        // Invariant: whatever length a prefix announces, the payload buffer holds at most
        // about twice the bytes that really arrived (plus one chunk), never the announcement.
        #[test]
        fn fuzz_payload_memory_follows_received_bytes(
            announced in 0u32..=u32::MAX,
            sent in proptest::collection::vec(proptest::num::u8::ANY, 0..4096),
            sizes in proptest::collection::vec(1usize..5000, 1..4),
        ) {
            let mut data = announced.to_be_bytes().to_vec();
            let n = sent.len();
            data.extend(sent);
            let mut r = Chunked { data, pos: 0, sizes, step: 0 };
            let mut prefix = [0u8; 4];
            r.read_exact(&mut prefix).expect("prefix");
            let Ok(len) = frame_len(prefix) else { return Ok(()) };
            let mut buf = Vec::new();
            let _ = read_payload(&mut r, len, &mut buf);
            proptest::prop_assert!(buf.capacity() <= (2 * n).max(8), "capacity {} after {n} bytes", buf.capacity());
        }
    }
}
