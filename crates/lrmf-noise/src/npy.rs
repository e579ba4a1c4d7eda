//! A minimal NumPy `.npy` (format v1.0) writer for f32 matrices, so generated noise can be
//! checked in Python (`numpy.load`) without extra dependencies.

use crate::NoiseError;
use std::io::Write;

/// Writes a `rows × cols` f32 matrix (row-major `data`) as a NumPy `.npy` v1.0 file:
/// magic `\x93NUMPY`, version 1.0, a little-endian u16 header length, the header
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (rows, cols), }` padded with spaces and a
/// newline so the data starts at a multiple of 64 bytes, then the data little-endian, C order.
/// Errors if `data.len() != rows·cols` or the writer fails. O(rows·cols).
pub fn write_npy(
    mut w: impl Write,
    rows: usize,
    cols: usize,
    data: &[f32],
) -> Result<(), NoiseError> {
    if rows.checked_mul(cols) != Some(data.len()) {
        return Err(NoiseError::invalid(
            "data",
            format!(
                "has {} values, rows·cols = {rows}·{cols} needed",
                data.len()
            ),
        ));
    }
    write_npy_header(&mut w, rows, cols)?;
    write_npy_rows(&mut w, data)?;
    w.flush().map_err(io)
}

fn io(e: std::io::Error) -> NoiseError {
    NoiseError::Io(e.to_string())
}

/// The `.npy` v1.0 header of a `rows × cols` f32 matrix (see [`write_npy`]); the data follows
/// with [`write_npy_rows`], so a matrix larger than memory can be streamed row by row.
pub fn write_npy_header(w: impl Write, rows: usize, cols: usize) -> Result<(), NoiseError> {
    write_npy_header_typed(w, "<f4", rows, cols)
}

/// The `.npy` v1.0 header of a `rows × cols` matrix of NumPy type `descr` (`<f4`, `<f8`, …).
pub fn write_npy_header_typed(
    mut w: impl Write,
    descr: &str,
    rows: usize,
    cols: usize,
) -> Result<(), NoiseError> {
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let unpadded = 6 + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    w.write_all(b"\x93NUMPY\x01\x00").map_err(io)?;
    let hlen = u16::try_from(header.len())
        .map_err(|_| NoiseError::invalid("rows", "header too long for npy v1.0"))?;
    w.write_all(&hlen.to_le_bytes()).map_err(io)?;
    w.write_all(header.as_bytes()).map_err(io)
}

/// Appends f32 values little-endian (the data part of a `.npy` file). O(len).
pub fn write_npy_rows(mut w: impl Write, data: &[f32]) -> Result<(), NoiseError> {
    let mut buf = Vec::with_capacity(data.len().min(1 << 16) * 4);
    for block in data.chunks(1 << 16) {
        buf.clear();
        for v in block {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        w.write_all(&buf).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(rows: usize, cols: usize) {
        let data: Vec<f32> = (0..rows * cols).map(|i| i as f32 * 0.5 - 3.0).collect();
        let mut bytes = Vec::new();
        write_npy(&mut bytes, rows, cols, &data).unwrap();
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0, "data must be 64-byte aligned");
        let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
        assert!(header.ends_with('\n'));
        assert!(header.starts_with(&format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}"
        )));
        let body = &bytes[10 + hlen..];
        assert_eq!(body.len(), 4 * rows * cols);
        let back: Vec<f32> = body
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(back, data);
    }

    #[test]
    fn writes_a_valid_v1_file() {
        check(3, 4);
        check(1, 1);
        check(1000, 7);
        check(0, 5);
    }

    #[test]
    fn wrong_length_is_an_error() {
        assert!(write_npy(Vec::new(), 2, 2, &[1.0; 3]).is_err());
        assert!(write_npy(Vec::new(), usize::MAX, 2, &[]).is_err());
    }
}
