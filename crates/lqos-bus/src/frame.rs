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

/// Blocking: reads exactly `len` payload bytes into `buf` (cleared first) in [`READ_CHUNK`]
/// pieces, so `buf` never holds much more than what the peer really sent.
pub fn read_payload(r: &mut impl Read, len: usize, buf: &mut Vec<u8>) -> Result<(), BusError> {
    buf.clear();
    while buf.len() < len {
        let start = buf.len();
        let want = (len - start).min(READ_CHUNK);
        buf.resize(start + want, 0);
        let n = loop {
            match r.read(&mut buf[start..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    buf.truncate(start);
                    return Err(BusError::Io { source });
                }
            }
        };
        buf.truncate(start + n);
        if n == 0 {
            return Err(BusError::Io {
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("frame ended after {start} of {len} bytes"),
                ),
            });
        }
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

    proptest::proptest! {
        // Invariant: decoding arbitrary bytes never panics; it returns a value or an error.
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode::<Command>(&bytes);
            let _ = decode::<Response>(&bytes);
            let mut cursor = std::io::Cursor::new(bytes);
            let _ = read_frame::<Command>(&mut cursor);
        }
    }
}
