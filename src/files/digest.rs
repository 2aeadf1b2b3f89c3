//! Writing a file and taking its MD5 on a second core: the bytes are handed over in large
//! chunks to a thread that hashes them and writes them on, so that a results file of millions
//! of rows costs the thread that formats the rows nothing for its digest.

use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use md5::{Digest, Md5};

/// Bytes handed over at a time.
const CHUNK: usize = 256 * 1024;
/// Chunks on their way to the thread at most (memory stays under `DEPTH + 2` chunks).
const DEPTH: usize = 4;

/// What the hashing thread gives back: the inner writer and the digest, or the first write
/// error.
type Outcome<W> = io::Result<(W, Md5)>;

/// A writer whose bytes reach `W` through a hashing thread; [`HashingWriter::finish`] returns
/// `W` and the MD5 of everything written.
pub(crate) struct HashingWriter<W: Write + Send + 'static> {
    chunk: Vec<u8>,
    to_thread: Option<SyncSender<Vec<u8>>>,
    /// Chunks the thread is done with, to be filled again.
    spare: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<Outcome<W>>>,
}

impl<W: Write + Send + 'static> HashingWriter<W> {
    pub(crate) fn new(mut inner: W) -> HashingWriter<W> {
        let (to_thread, chunks) = mpsc::sync_channel::<Vec<u8>>(DEPTH);
        let (give_back, spare) = mpsc::sync_channel::<Vec<u8>>(DEPTH + 1);
        let thread = std::thread::Builder::new()
            .name("md5".to_owned())
            .spawn(move || {
                let mut md5 = Md5::new();
                for mut chunk in chunks {
                    md5.update(&chunk);
                    inner.write_all(&chunk)?;
                    chunk.clear();
                    // The writer may have stopped taking them back: then it is simply dropped.
                    let _ = give_back.try_send(chunk);
                }
                Ok((inner, md5))
            })
            .expect("spawn the md5 thread");
        HashingWriter {
            chunk: Vec::with_capacity(CHUNK),
            to_thread: Some(to_thread),
            spare,
            thread: Some(thread),
        }
    }

    /// Hands the current chunk over; a failed write on the thread surfaces here.
    fn hand_over(&mut self) -> io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        let full = std::mem::replace(&mut self.chunk, next);
        let sent = self.to_thread.as_ref().map(|tx| tx.send(full));
        match sent {
            Some(Ok(())) => Ok(()),
            // The thread stopped: it met a write error, which `join` returns.
            _ => Err(self.join().err().unwrap_or_else(stopped)),
        }
    }

    fn join(&mut self) -> Outcome<W> {
        self.to_thread = None;
        match self.thread.take() {
            Some(thread) => thread.join().unwrap_or_else(|_| Err(stopped())),
            None => Err(stopped()),
        }
    }

    /// Writes what is left, waits for the thread, and returns the inner writer and the MD5
    /// (lower-case hex) of every byte written.
    pub(crate) fn finish(mut self) -> io::Result<(W, String)> {
        self.hand_over()?;
        let (inner, md5) = self.join()?;
        Ok((inner, hex::encode(md5.finalize())))
    }
}

fn stopped() -> io::Error {
    io::Error::other("the md5 thread stopped")
}

impl<W: Write + Send + 'static> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.chunk.len();
        let n = buf.len().min(room);
        self.chunk.extend_from_slice(&buf[..n]);
        if self.chunk.len() == CHUNK {
            self.hand_over()?;
        }
        Ok(n)
    }

    /// Bytes are written when a chunk is full or at [`HashingWriter::finish`]; a flush does
    /// not hand a part-filled chunk over (the file is committed only after `finish`).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write + Send + 'static> Drop for HashingWriter<W> {
    /// Without `finish`, the thread is still waited for, so that what it holds (a temporary
    /// file) is dropped before this returns.
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bytes_and_their_md5_come_out_as_written() {
        let data: Vec<u8> = (0..CHUNK * 3 + 123).map(|i| (i % 251) as u8).collect();
        let mut writer = HashingWriter::new(Vec::new());
        for piece in data.chunks(1000) {
            writer.write_all(piece).unwrap();
        }
        let (out, digest) = writer.finish().unwrap();
        assert_eq!(out, data);
        assert_eq!(digest, hex::encode(Md5::digest(&data)));
    }

    #[test]
    fn nothing_written_is_the_md5_of_nothing() {
        let (out, digest) = HashingWriter::new(Vec::new()).finish().unwrap();
        assert!(out.is_empty());
        assert_eq!(digest, "d41d8cd98f00b204e9800998ecf8427e");
    }

    /// A sink that fails after `left` bytes.
    struct Full {
        left: usize,
    }

    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.left == 0 {
                return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
            }
            let n = buf.len().min(self.left);
            self.left -= n;
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_write_error_on_the_thread_reaches_the_writer() {
        let mut writer = HashingWriter::new(Full { left: CHUNK + 10 });
        let data = vec![7u8; CHUNK * (DEPTH + 4)];
        let error = writer
            .write_all(&data)
            .err()
            .or_else(|| writer.finish().err())
            .expect("the error is reported");
        assert_eq!(error.kind(), io::ErrorKind::StorageFull, "{error}");
    }
}
