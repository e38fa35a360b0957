//! Where log lines go: a buffer that a thread of its own writes out every [`FLUSH_EVERY`].
//!
//! A worker appends its formatted line to the shared buffer (a lock held for one copy) and goes
//! on: it never waits on a `write(2)` to a busy disk or a slow pipe, and it never wakes another
//! thread. tracing-appender's channel, used before, woke its writer for nearly every line under
//! load (a futex, then `sched_yield` while the writer spun for the next), which cost a proxied
//! request more than formatting its line did (bench/PROFILE.md). Batches leave in order.
//!
//! Nothing is dropped: past [`MAX_PENDING`] bytes the worker that crosses it writes the batch out
//! itself, so a stuck output holds requests back instead of growing memory. Lines still in the
//! buffer are lost if the process is killed (as they were in the channel); dropping the
//! [`FlushGuard`] on a clean stop writes them out.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait in the buffer: short enough for anyone tailing the log.
pub const FLUSH_EVERY: Duration = Duration::from_millis(20);

/// The most bytes kept waiting (about 30,000 request lines) before workers write out themselves.
pub const MAX_PENDING: usize = 4 << 20;

/// The writer every subscriber layer writes through; cheap to clone.
#[derive(Clone)]
pub struct BatchedWriter {
    shared: Arc<Shared>,
}

struct Shared {
    pending: Mutex<Vec<u8>>,
    output: Mutex<Box<dyn Write + Send>>,
    stopping: Mutex<bool>,
    stop: Condvar,
}

/// Stops the writer thread when dropped, after it wrote out everything buffered.
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl BatchedWriter {
    /// The writer and the guard of the thread that writes `output` out (named `log-writer`).
    pub fn spawn(output: impl Write + Send + 'static) -> std::io::Result<(Self, FlushGuard)> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Vec::new()),
            output: Mutex::new(Box::new(output)),
            stopping: Mutex::new(false),
            stop: Condvar::new(),
        });
        let flusher = shared.clone();
        let thread = std::thread::Builder::new().name("log-writer".into()).spawn(move || flusher.run())?;
        Ok((Self { shared: shared.clone() }, FlushGuard { shared, thread: Some(thread) }))
    }
}

impl Shared {
    fn run(&self) {
        loop {
            // The flag's lock is released before writing: the guard can ask to stop meanwhile.
            let stopping = *self
                .stop
                .wait_timeout_while(lock(&self.stopping), FLUSH_EVERY, |stopping| !*stopping)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            self.write_out(lock(&self.pending));
            if stopping {
                return;
            }
        }
    }

    /// Writes out what is pending. The output is locked before the buffer is released, so a
    /// batch taken later cannot overtake this one.
    fn write_out(&self, mut pending: MutexGuard<'_, Vec<u8>>) {
        if pending.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut *pending);
        let mut output = lock(&self.output);
        drop(pending);
        // A log that cannot be written has nowhere to report it; the service goes on.
        let _ = output.write_all(&batch).and_then(|()| output.flush());
    }
}

impl Write for BatchedWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut pending = lock(&self.shared.pending);
        pending.extend_from_slice(line);
        if pending.len() >= MAX_PENDING {
            self.shared.write_out(pending);
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedWriter {
    type Writer = BatchedWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        *lock(&self.shared.stopping) = true;
        self.shared.stop.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // Lines logged while the thread stopped.
        self.shared.write_out(lock(&self.shared.pending));
    }
}

/// A lock that a panic elsewhere does not make unusable: a log buffer is still a log buffer.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// An output the test can read back while the writer owns it.
    #[derive(Clone, Default)]
    pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_reach_the_output_in_order_within_a_flush_interval() {
        let output = Captured::default();
        let (mut writer, _guard) = BatchedWriter::spawn(output.clone()).unwrap();
        writer.write_all(b"first\n").unwrap();
        writer.write_all(b"second\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while lock(&output.0).len() < 13 && std::time::Instant::now() < deadline {
            std::thread::sleep(FLUSH_EVERY / 4);
        }
        assert_eq!(lock(&output.0).as_slice(), b"first\nsecond\n");
    }

    #[test]
    fn dropping_the_guard_writes_out_every_buffered_line() {
        let output = Captured::default();
        let (writer, guard) = BatchedWriter::spawn(output.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000 {
                        writer.write_all(format!("{t} {i}\n").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        drop(guard);
        let written = String::from_utf8(lock(&output.0).clone()).unwrap();
        for t in 0..4 {
            let of_thread: Vec<usize> = written
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("{t} ")))
                .map(|i| i.parse().unwrap())
                .collect();
            assert_eq!(of_thread, (0..10_000).collect::<Vec<_>>(), "thread {t}'s lines, in order");
        }
    }

    #[test]
    fn a_worker_past_the_limit_writes_the_batch_out_itself() {
        let output = Captured::default();
        let (mut writer, _guard) = BatchedWriter::spawn(output.clone()).unwrap();
        let line = vec![b'x'; MAX_PENDING];
        writer.write_all(&line).unwrap();
        // Written by this thread before `write_all` returned, not by the flusher later.
        assert_eq!(lock(&output.0).len(), MAX_PENDING);
        assert!(lock(&writer.shared.pending).is_empty());
    }
}
