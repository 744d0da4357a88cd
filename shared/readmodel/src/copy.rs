//! Rows for `COPY … FROM STDIN (FORMAT binary)`: PostgreSQL's fastest way in, with no SQL text
//! and no arrays to unpack per row, and no field parsed from text on its side (jsonb excepted,
//! whose binary form is its text).
//!
//! Each field is written by sqlx's own binary encoding of the value (the format `COPY` binary
//! takes field by field), so no wire format is written by hand here beyond the framing.

use sqlx::postgres::{PgArgumentBuffer, PgConnection};
use sqlx::{Encode, Postgres, encode::IsNull};

/// The fixed start of binary COPY data: signature, flags, header extension length.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The jsonb binary format's version, before the JSON text.
const JSONB_VERSION: u8 = 1;

/// Binary COPY data being written, row by row.
pub(crate) struct BinaryRows {
    buffer: PgArgumentBuffer,
    columns: i16,
    rows: usize,
}

impl BinaryRows {
    /// Data for rows of `columns` fields each.
    pub(crate) fn new(columns: usize) -> Self {
        let mut buffer = PgArgumentBuffer::default();
        buffer.extend_from_slice(HEADER);
        Self {
            buffer,
            // A PostgreSQL table holds at most 1 600 columns.
            columns: columns as i16,
            rows: 0,
        }
    }

    /// Starts a row; exactly `columns` fields must follow.
    pub(crate) fn row(&mut self) {
        self.buffer.extend_from_slice(&self.columns.to_be_bytes());
        self.rows += 1;
    }

    /// A field, as sqlx encodes `value` for a query parameter; `None` is NULL.
    pub(crate) fn field<'q, T: Encode<'q, Postgres>>(
        &mut self,
        value: &T,
    ) -> Result<(), sqlx::Error> {
        let start = self.start_field();
        match value.encode_by_ref(&mut self.buffer) {
            Ok(IsNull::No) => self.end_field(start),
            Ok(IsNull::Yes) => {
                self.buffer.truncate(start);
                self.buffer.extend_from_slice(&(-1i32).to_be_bytes());
            }
            Err(e) => return Err(sqlx::Error::Encode(e)),
        }
        Ok(())
    }

    /// A jsonb field whose JSON text `write` appends (written straight into the rows, without
    /// a `String` per value).
    pub(crate) fn jsonb(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), serde_json::Error>,
    ) -> Result<(), sqlx::Error> {
        let start = self.start_field();
        self.buffer.push(JSONB_VERSION);
        write(&mut self.buffer).map_err(|e| sqlx::Error::Encode(e.into()))?;
        self.end_field(start);
        Ok(())
    }

    /// Reserves the field's length; returns where it starts.
    fn start_field(&mut self) -> usize {
        let start = self.buffer.len();
        self.buffer.extend_from_slice(&[0; 4]);
        start
    }

    /// Fills in the length of the field begun at `start`.
    fn end_field(&mut self, start: usize) {
        let length = (self.buffer.len() - start - 4) as i32;
        self.buffer[start..start + 4].copy_from_slice(&length.to_be_bytes());
    }

    /// The data to send, trailer included; `None` when no row was written.
    fn into_data(mut self) -> Option<Vec<u8>> {
        if self.rows == 0 {
            return None;
        }
        self.buffer.extend_from_slice(&(-1i16).to_be_bytes());
        Some(std::mem::take(&mut *self.buffer))
    }

    /// Sends the rows with `statement` (a `COPY … FROM STDIN (FORMAT binary)`); nothing is sent
    /// when there are none.
    pub(crate) async fn copy(
        self,
        conn: &mut PgConnection,
        statement: &str,
    ) -> Result<(), sqlx::Error> {
        let Some(data) = self.into_data() else {
            return Ok(());
        };
        let mut copy = conn.copy_in_raw(statement).await?;
        if let Err(e) = copy.send(data).await {
            copy.abort(e.to_string()).await?;
            return Err(e);
        }
        copy.finish().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The framing PostgreSQL's documentation gives: header, per row the field count, per field
    /// its length (-1 for NULL) and bytes, then the trailer.
    #[test]
    fn rows_are_framed_as_binary_copy_expects() {
        let mut rows = BinaryRows::new(3);
        rows.row();
        rows.field(&7i32).expect("int4");
        rows.field(&None::<&str>).expect("null");
        rows.jsonb(|out| serde_json::to_writer(out, &serde_json::json!({})))
            .expect("jsonb");
        assert_eq!(HEADER.len(), 19);
        // Signature, then the flags and the header extension's length, both zero.
        let mut expected = b"PGCOPY\n\xff\r\n\0".to_vec();
        expected.extend_from_slice(&0i32.to_be_bytes());
        expected.extend_from_slice(&0i32.to_be_bytes());
        assert_eq!(HEADER, expected.as_slice());
        expected.extend_from_slice(&3i16.to_be_bytes());
        expected.extend_from_slice(&4i32.to_be_bytes());
        expected.extend_from_slice(&7i32.to_be_bytes());
        expected.extend_from_slice(&(-1i32).to_be_bytes());
        expected.extend_from_slice(&3i32.to_be_bytes());
        expected.extend_from_slice(b"\x01{}");
        assert_eq!(rows.buffer.as_slice(), expected.as_slice());
        assert_eq!(rows.rows, 1);
        expected.extend_from_slice(&(-1i16).to_be_bytes());
        assert_eq!(rows.into_data(), Some(expected));
        assert_eq!(BinaryRows::new(3).into_data(), None);
    }
}
