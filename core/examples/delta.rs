//! Creates and applies delta patches from the command line, for tests/delta/cross-check and
//! bench/delta (which time it and measure its peak memory):
//!
//!     delta create FROM TO PATCH [none|heatshrink|heatshrink:WINDOW_SZ2:LOOKAHEAD_SZ2]
//!     delta apply FROM PATCH TO
//!
//! `apply` streams the patch through the device-side applier with detools' 256-byte window, in
//! 4 KiB pieces as a download would arrive, writing the new image as it is produced.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::Instant;

use anyhow::{Context, bail};
use nowatch_ota_core::delta::{Applier, Compression, create_patch};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["create", from, to, patch] => create(from, to, patch, Compression::HEATSHRINK),
        ["create", from, to, patch, compression] => create(from, to, patch, parse_compression(compression)?),
        ["apply", from, patch, to] => apply(from, patch, to),
        _ => bail!(
            "usage: delta create FROM TO PATCH [none|heatshrink|heatshrink:WINDOW_SZ2:LOOKAHEAD_SZ2]\n       delta apply FROM PATCH TO"
        ),
    }
}

fn parse_compression(text: &str) -> anyhow::Result<Compression> {
    let compression = match text.split(':').collect::<Vec<_>>()[..] {
        ["none"] => Compression::None,
        ["heatshrink"] => Compression::HEATSHRINK,
        ["heatshrink", window, lookahead] => {
            Compression::Heatshrink { window_sz2: window.parse()?, lookahead_sz2: lookahead.parse()? }
        }
        _ => bail!("unknown compression {text:?}"),
    };
    compression.check()?;
    Ok(compression)
}

fn read(path: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {path}"))
}

fn create(from: &str, to: &str, patch: &str, compression: Compression) -> anyhow::Result<()> {
    let (from_data, to_data) = (read(from)?, read(to)?);
    let started = Instant::now();
    let data = create_patch(&from_data, &to_data, compression);
    let elapsed = started.elapsed();
    std::fs::write(patch, &data).with_context(|| format!("writing {patch}"))?;
    eprintln!(
        "{patch}: {} bytes ({}) for {} bytes, created in {:.3} s",
        data.len(),
        compression.name(),
        to_data.len(),
        elapsed.as_secs_f64()
    );
    Ok(())
}

fn apply(from: &str, patch: &str, to: &str) -> anyhow::Result<()> {
    let (from_data, patch_data) = (read(from)?, read(patch)?);
    let mut out = BufWriter::new(File::create(to).with_context(|| format!("creating {to}"))?);
    let started = Instant::now();
    let mut applier = Applier::<256>::new();
    let mut source = &from_data[..];
    for piece in patch_data.chunks(4096) {
        applier.push(piece, &mut source, &mut |bytes: &[u8]| out.write_all(bytes))?;
    }
    let size = applier.finish()?;
    out.flush()?;
    eprintln!("{to}: {size} bytes, applied in {:.3} s", started.elapsed().as_secs_f64());
    Ok(())
}
