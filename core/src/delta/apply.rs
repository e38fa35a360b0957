//! The device side: a patch applied as its bytes arrive, reading the old image through [`Source`]
//! and handing the new one to a sink in order, in fixed buffers and without allocating.

use core::convert::Infallible;

use super::heatshrink::{self, Decoder};
use super::size::SizeReader;
use super::{COMPRESSION_HEATSHRINK, COMPRESSION_NONE, PATCH_TYPE_SEQUENTIAL, PatchError};

/// The old image, which diff data is added to: flash on a watch, a slice on a server.
pub trait Source {
    /// Its size in bytes; a patch that would read past it is refused before anything is read.
    fn size(&self) -> u64;

    /// Fills `buf` with the bytes at `offset`. Only called within `0..size()`.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError>;
}

impl Source for &[u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        let bytes = usize::try_from(offset)
            .ok()
            .and_then(|start| self.get(start..start.checked_add(buf.len())?))
            .ok_or(SourceError("read outside the old image"))?;
        buf.copy_from_slice(bytes);
        Ok(())
    }
}

/// Why a [`Source`] could not read: a fixed message, so that a device needs no allocation to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub &'static str);

/// Why applying a patch stopped: the patch itself ([`PatchError`]), the old image, or the sink
/// (whose error type is `E`).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError<E = Infallible> {
    #[error(transparent)]
    Patch(#[from] PatchError),
    #[error("reading {len} bytes of the old image at offset {offset} failed: {error}")]
    Source { offset: u64, len: usize, error: SourceError },
    #[error("writing the new image failed: {0}")]
    Sink(E),
}

/// Bytes of the old image read at a time for diff data: the applier's one buffer besides the
/// heatshrink window.
const READ_CHUNK: usize = 128;

/// Applies a sequential patch (compression none or heatshrink, with a window of at most `WINDOW`
/// bytes, a power of two from 16 to 32768) as it arrives: feed it with [`push`](Self::push), then
/// call [`finish`](Self::finish).
///
/// Its working memory is the struct itself, `WINDOW` + 216 bytes (472 for the default 256-byte
/// window, which is detools' default): it never allocates.
///
/// What the format lets it detect, it refuses: an unknown header, a size or adjustment that
/// would read outside the old image or write past the new one, a patch that ends early or goes on
/// after the new image. It cannot detect a changed byte inside diff or extra data, which only
/// changes the output: check the new image against its signed digest before using it.
///
/// ```
/// use nowatch_ota_core::delta::{Applier, Compression, create_patch};
///
/// let (old, new) = (&b"old firmware image"[..], &b"new firmware image, longer"[..]);
/// let patch = create_patch(old, new, Compression::HEATSHRINK);
///
/// let mut applier = Applier::<256>::new();
/// let mut flash = Vec::new();
/// for piece in patch.chunks(5) {
///     applier.push(piece, &mut &old[..], &mut |bytes: &[u8]| {
///         flash.extend_from_slice(bytes);
///         Ok::<_, std::convert::Infallible>(())
///     })?;
/// }
/// assert_eq!(applier.finish()?, new.len() as u64);
/// assert_eq!(flash, new);
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
///
/// A window that is not a power of two from 16 to 32768 does not build:
///
/// ```compile_fail
/// let applier = nowatch_ota_core::delta::Applier::<100>::new();
/// ```
pub struct Applier<const WINDOW: usize = 256> {
    step: Step,
    /// Whether the body is heatshrink-compressed (else it is read as it is).
    heatshrink: bool,
    /// The size field being read, in the header or the body.
    size: SizeReader,
    body: Body,
    decoder: Decoder<WINDOW>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Header,
    ToSize,
    HeatshrinkHeader,
    Body,
    Failed,
}

/// The sequential patch once decompressed: where it is and what it expects next.
struct Body {
    stage: Stage,
    to_size: u64,
    to_pos: u64,
    from_pos: u64,
    buf: [u8; READ_CHUNK],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// A size field, read a byte at a time into `Applier::size`.
    Size(Field),
    Diff {
        left: u64,
    },
    Extra {
        left: u64,
    },
    /// The new image is complete: nothing may follow.
    End,
}

/// The size fields of the body, in their order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// The data-format patch's size, first in the body: 0, as data formats are not supported.
    DataFormat,
    Diff,
    Extra,
    Adjustment,
}

impl<const WINDOW: usize> Default for Applier<WINDOW> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const WINDOW: usize> Applier<WINDOW> {
    /// The largest heatshrink window this applier takes, in bits.
    pub const MAX_WINDOW_SZ2: u8 = {
        assert!(
            WINDOW.is_power_of_two() && WINDOW >= 16 && WINDOW <= 1 << 15,
            "WINDOW must be a power of two from 16 to 32768"
        );
        WINDOW.trailing_zeros() as u8
    };

    pub const fn new() -> Self {
        // Evaluated here so that a bad WINDOW fails the build of whoever names it.
        let _ = Self::MAX_WINDOW_SZ2;
        Self {
            step: Step::Header,
            heatshrink: false,
            size: SizeReader::new(),
            body: Body {
                stage: Stage::Size(Field::DataFormat),
                to_size: 0,
                to_pos: 0,
                from_pos: 0,
                buf: [0; READ_CHUNK],
            },
            decoder: Decoder::new(),
        }
    }

    /// The size of the new image, once the patch's header has arrived.
    pub fn to_size(&self) -> Option<u64> {
        match self.step {
            Step::Header | Step::ToSize => None,
            Step::HeatshrinkHeader | Step::Body | Step::Failed => Some(self.body.to_size),
        }
    }

    /// Bytes of the new image handed to the sink so far.
    pub fn written(&self) -> u64 {
        self.body.to_pos
    }

    /// Feeds the next bytes of the patch, as they arrive; output bytes of the new image go to
    /// `sink` in order. After an error the applier refuses everything
    /// ([`PatchError::Stopped`]).
    pub fn push<S: Source, E>(
        &mut self,
        patch: &[u8],
        from: &mut S,
        sink: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), ApplyError<E>> {
        if self.step == Step::Failed {
            return Err(PatchError::Stopped.into());
        }
        let result = self.push_inner(patch, from, sink);
        if result.is_err() {
            self.step = Step::Failed;
        }
        result
    }

    /// The patch ended: `Ok(to_size)` only if the whole new image was produced and the patch
    /// holds nothing more.
    pub fn finish(&mut self) -> Result<u64, PatchError> {
        match self.step {
            Step::Failed => Err(PatchError::Stopped),
            Step::Header | Step::ToSize | Step::HeatshrinkHeader => Err(PatchError::Truncated),
            Step::Body if self.body.stage != Stage::End => Err(PatchError::Truncated),
            Step::Body if self.heatshrink && !self.decoder.at_clean_end() => Err(PatchError::TrailingData),
            Step::Body => Ok(self.body.to_size),
        }
    }

    fn push_inner<S: Source, E>(
        &mut self,
        mut patch: &[u8],
        from: &mut S,
        sink: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), ApplyError<E>> {
        while let Some((&byte, rest)) = patch.split_first() {
            match self.step {
                Step::Failed => return Err(PatchError::Stopped.into()),
                Step::Header => {
                    self.header(byte)?;
                    patch = rest;
                }
                Step::ToSize => {
                    if let Some(to_size) = self.size.push(byte)? {
                        let to_size = u64::try_from(to_size).map_err(|_| PatchError::NegativeSize)?;
                        self.body.to_size = to_size;
                        self.step = if to_size == 0 {
                            // detools writes nothing more for an empty image, not even the
                            // compression's header.
                            self.heatshrink = false;
                            self.body.stage = Stage::End;
                            Step::Body
                        } else if self.heatshrink {
                            Step::HeatshrinkHeader
                        } else {
                            Step::Body
                        };
                    }
                    patch = rest;
                }
                Step::HeatshrinkHeader => {
                    let (window_sz2, lookahead_sz2) = heatshrink::parse_header(byte);
                    if !heatshrink::valid_parameters(window_sz2, lookahead_sz2) {
                        return Err(PatchError::HeatshrinkParameters { window_sz2, lookahead_sz2 }.into());
                    }
                    if window_sz2 > Self::MAX_WINDOW_SZ2 {
                        return Err(
                            PatchError::WindowTooLarge { window_sz2, max_sz2: Self::MAX_WINDOW_SZ2 }.into()
                        );
                    }
                    self.decoder.start(window_sz2, lookahead_sz2);
                    self.step = Step::Body;
                    patch = rest;
                }
                Step::Body if self.heatshrink => {
                    loop {
                        let (start, end) = self.decoder.produce(&mut patch);
                        if start == end {
                            break;
                        }
                        self.body.feed(&self.decoder.window()[start..end], &mut self.size, from, sink)?;
                    }
                    patch = &[];
                }
                Step::Body => {
                    self.body.feed(patch, &mut self.size, from, sink)?;
                    patch = &[];
                }
            }
        }
        Ok(())
    }

    fn header(&mut self, byte: u8) -> Result<(), PatchError> {
        // bitstruct 'p1u3u4': detools ignores the top bit; here it makes the type unknown.
        let (patch_type, compression) = (byte >> 4, byte & 0x0f);
        if patch_type != PATCH_TYPE_SEQUENTIAL {
            return Err(PatchError::PatchType(patch_type));
        }
        self.heatshrink = match compression {
            COMPRESSION_NONE => false,
            COMPRESSION_HEATSHRINK => true,
            other => return Err(PatchError::Compression(other)),
        };
        self.step = Step::ToSize;
        Ok(())
    }
}

impl Body {
    /// Takes the next bytes of the decompressed patch.
    fn feed<S: Source, E>(
        &mut self,
        mut data: &[u8],
        size: &mut SizeReader,
        from: &mut S,
        sink: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), ApplyError<E>> {
        while !data.is_empty() {
            match self.stage {
                Stage::End => return Err(PatchError::TrailingData.into()),
                Stage::Diff { left } => {
                    let n = chunk(left, data.len().min(READ_CHUNK));
                    let buf = &mut self.buf[..n];
                    from.read_at(self.from_pos, buf).map_err(|error| ApplyError::Source {
                        offset: self.from_pos,
                        len: n,
                        error,
                    })?;
                    for (byte, diff) in buf.iter_mut().zip(&data[..n]) {
                        *byte = byte.wrapping_add(*diff);
                    }
                    sink(buf).map_err(ApplyError::Sink)?;
                    self.advance(n);
                    self.from_pos += n as u64;
                    data = &data[n..];
                    self.stage = match left - n as u64 {
                        0 => Stage::Size(Field::Extra),
                        left => Stage::Diff { left },
                    };
                }
                Stage::Extra { left } => {
                    let n = chunk(left, data.len());
                    sink(&data[..n]).map_err(ApplyError::Sink)?;
                    self.advance(n);
                    data = &data[n..];
                    self.stage = match left - n as u64 {
                        0 => Stage::Size(Field::Adjustment),
                        left => Stage::Extra { left },
                    };
                }
                Stage::Size(field) => {
                    let value = size.push(data[0])?;
                    data = &data[1..];
                    if let Some(value) = value {
                        self.stage = self.after_size(field, value, from.size())?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The stage after a size field with this value, once it is checked against the images.
    fn after_size(&mut self, field: Field, value: i64, from_size: u64) -> Result<Stage, PatchError> {
        Ok(match field {
            Field::DataFormat if value != 0 => return Err(PatchError::DataFormat),
            Field::DataFormat => Stage::Size(Field::Diff),
            Field::Diff => {
                let len = self.data_len(value)?;
                if self.from_pos.checked_add(len).is_none_or(|end| end > from_size) {
                    return Err(PatchError::ReadOutsideFrom { offset: self.from_pos, len, from_size });
                }
                if len == 0 { Stage::Size(Field::Extra) } else { Stage::Diff { left: len } }
            }
            Field::Extra => match self.data_len(value)? {
                0 => Stage::Size(Field::Adjustment),
                len => Stage::Extra { left: len },
            },
            Field::Adjustment => {
                let moved = i128::from(self.from_pos) + i128::from(value);
                self.from_pos = u64::try_from(moved).ok().filter(|&pos| pos <= from_size).ok_or(
                    PatchError::AdjustmentOutsideFrom {
                        from_pos: self.from_pos,
                        adjustment: value,
                        from_size,
                    },
                )?;
                if self.to_pos == self.to_size { Stage::End } else { Stage::Size(Field::Diff) }
            }
        })
    }

    /// A diff or extra size, checked to stay within the new image.
    fn data_len(&self, value: i64) -> Result<u64, PatchError> {
        let len = u64::try_from(value).map_err(|_| PatchError::NegativeSize)?;
        if len > self.to_size - self.to_pos {
            return Err(PatchError::WritePastEnd { to_pos: self.to_pos, len, to_size: self.to_size });
        }
        Ok(len)
    }

    fn advance(&mut self, n: usize) {
        self.to_pos += n as u64;
    }
}

/// `min(left, available)` as a length.
fn chunk(left: u64, available: usize) -> usize {
    usize::try_from(left).map_or(available, |left| left.min(available))
}
