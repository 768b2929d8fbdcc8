//! The HTML report in a real browser: the committed full-ladder results rendered to
//! report.html, opened in headless Chromium (Debian's package; scripts/setup installs it),
//! which must paint a page that is not blank and whose DOM holds the headline, the advisor's
//! reading and the steps table.

use std::io::Read;
use std::path::Path;
use std::process::Command;
use tpslab_bench::experiment::{write_report, ExperimentResults};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/full-ladder-bft4.results.json"
);

fn chromium() -> Command {
    let mut c = Command::new("chromium");
    // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
    ]);
    c
}

/// The RGB(A) pixels of a PNG (8-bit RGB or RGBA, non-interlaced: what Chromium writes),
/// with width and channels.
fn pixels(png: &[u8]) -> (usize, usize, Vec<u8>) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let (mut at, mut idat, mut header) = (8, Vec::new(), None);
    while at + 8 <= png.len() {
        let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        let kind = &png[at + 4..at + 8];
        let data = &png[at + 8..at + 8 + len];
        match kind {
            b"IHDR" => header = Some(data.to_vec()),
            b"IDAT" => idat.extend_from_slice(data),
            _ => {}
        }
        at += 12 + len;
    }
    let h = header.expect("IHDR");
    let width = u32::from_be_bytes(h[0..4].try_into().unwrap()) as usize;
    let channels = match (h[8], h[9], h[12]) {
        (8, 2, 0) => 3,
        (8, 6, 0) => 4,
        other => panic!("unexpected PNG format (depth, color, interlace) {other:?}"),
    };
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .unwrap();
    let stride = width * channels;
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    for row in raw.chunks(stride + 1) {
        let (filter, line) = (row[0], &row[1..]);
        let prev_start = out.len().saturating_sub(stride);
        let has_prev = out.len() >= stride;
        for (i, &x) in line.iter().enumerate() {
            let a = if i >= channels {
                out[out.len() - channels]
            } else {
                0
            };
            let b = if has_prev { out[prev_start + i] } else { 0 };
            let c = if has_prev && i >= channels {
                out[prev_start + i - channels]
            } else {
                0
            };
            let v = match filter {
                0 => x,
                1 => x.wrapping_add(a),
                2 => x.wrapping_add(b),
                3 => x.wrapping_add(((a as u16 + b as u16) / 2) as u8),
                4 => {
                    let p = a as i16 + b as i16 - c as i16;
                    let (pa, pb, pc) = (
                        (p - a as i16).abs(),
                        (p - b as i16).abs(),
                        (p - c as i16).abs(),
                    );
                    let pred = if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    };
                    x.wrapping_add(pred)
                }
                f => panic!("bad PNG filter {f}"),
            };
            out.push(v);
        }
    }
    (width, channels, out)
}

#[test]
fn the_report_renders_in_headless_chromium_with_its_headline_advice_and_table() {
    let r = ExperimentResults::load(Path::new(FIXTURE)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.html");
    write_report(&r, &report).unwrap();
    let url = format!("file://{}", report.display());

    let dom = chromium()
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .expect("chromium (Debian's package; scripts/setup installs it)");
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    for want in [
        "<h2>Headline</h2>",
        "tuned vs baseline capacity",
        "The advisor's reading",
        "limited by: signature verification CPU",
        "<td>+sig-cache</td>",
        "<td>+zero-copy-net</td>",
    ] {
        assert!(dom.contains(want), "the rendered DOM has no {want:?}");
    }
    // The headline comes before the table.
    assert!(dom.find("<h2>Headline</h2>") < dom.find("<h2>Steps</h2>"));

    let shot = dir.path().join("shot.png");
    let out = chromium()
        .arg("--window-size=1000,1400")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // TPSLAB_REPORT_SHOT=FILE keeps the screenshot, to look at by eye.
    if let Some(keep) = std::env::var_os("TPSLAB_REPORT_SHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    let (width, channels, px) = pixels(&std::fs::read(&shot).unwrap());
    assert_eq!(width, 1000);
    let total = px.len() / channels;
    let inked = px
        .chunks(channels)
        .filter(|p| p[..3].iter().any(|&c| c < 200))
        .count();
    // Text, table borders and chart bars: a blank (white) page would have none.
    assert!(
        inked * 100 > total,
        "only {inked} of {total} pixels are not near-white: a blank page?"
    );
}
