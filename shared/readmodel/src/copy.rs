//! Rows for `COPY … FROM STDIN (FORMAT binary)`: PostgreSQL's fastest way in, with no SQL text
//! and no arrays to unpack per row, and no field parsed from text on its side (jsonb excepted,
//! whose binary form is its text).
//!
//! Each field is written by sqlx's own binary encoding of the value (the format `COPY` binary
//! takes field by field), so no wire format is written by hand here beyond the framing.

use sqlx::postgres::{PgArgumentBuffer, PgConnection, PgCopyIn};
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

    /// Ends the data with the trailer.
    fn end(&mut self) {
        self.buffer.extend_from_slice(&(-1i16).to_be_bytes());
    }
}

/// About how much COPY data is written before it is sent. The whole batch in one message made
/// each connection's write buffer as large as the largest batch, for good (sqlx keeps it), and
/// the rows' own buffer as large again: with 2 000 commits a batch, 28 of the projector's 43 MB of
/// peak heap (heaptrack). In chunks, PostgreSQL also takes in one while the next is written.
const CHUNK: usize = 256 * 1024;

/// Where COPY data goes: the connection until the first chunk is sent, the open `COPY` after.
enum Sink<'c> {
    Idle(&'c mut PgConnection),
    Open(PgCopyIn<&'c mut PgConnection>),
    /// Beginning it, sending to it or writing a row failed (an open `COPY` was aborted); the
    /// caller has the error.
    Failed,
}

/// A `COPY … FROM STDIN (FORMAT binary)` fed as its rows are written ([`CopyIn::row`], then
/// [`CopyIn::finish`]). Nothing reaches the server before the first chunk is full, and nothing
/// at all when no row was written.
pub(crate) struct CopyIn<'c> {
    sink: Sink<'c>,
    statement: &'c str,
    rows: BinaryRows,
}

impl<'c> CopyIn<'c> {
    /// Rows of `columns` fields each for `statement` (a `COPY … FROM STDIN (FORMAT binary)`).
    pub(crate) fn new(conn: &'c mut PgConnection, statement: &'c str, columns: usize) -> Self {
        Self {
            sink: Sink::Idle(conn),
            statement,
            rows: BinaryRows::new(columns),
        }
    }

    /// Starts a row and writes its fields with `write`, then sends what is written once it fills
    /// a chunk. A row that cannot be written, or a chunk that cannot be sent, aborts the `COPY`,
    /// so nothing of it is stored, and its error is returned.
    pub(crate) async fn row(
        &mut self,
        write: impl FnOnce(&mut BinaryRows) -> Result<(), sqlx::Error>,
    ) -> Result<(), sqlx::Error> {
        self.rows.row();
        if let Err(error) = write(&mut self.rows) {
            return Err(self.abort(error).await);
        }
        if self.rows.buffer.len() >= CHUNK {
            self.send().await?;
        }
        Ok(())
    }

    /// Sends the rest and ends the `COPY`; what fails before the end aborts it.
    pub(crate) async fn finish(mut self) -> Result<(), sqlx::Error> {
        if self.rows.rows == 0 {
            return Ok(());
        }
        self.rows.end();
        self.send().await?;
        match self.sink {
            Sink::Open(copy) => copy.finish().await.map(drop),
            Sink::Idle(_) | Sink::Failed => Ok(()),
        }
    }

    /// Sends the buffered data, beginning the `COPY` first if it has not begun; aborts it when
    /// the data does not go out.
    async fn send(&mut self) -> Result<(), sqlx::Error> {
        let mut copy = match std::mem::replace(&mut self.sink, Sink::Failed) {
            Sink::Idle(conn) => PgConnection::copy_in_raw(conn, self.statement).await?,
            Sink::Open(copy) => copy,
            Sink::Failed => {
                return Err(sqlx::Error::Protocol(
                    "COPY data after the COPY failed".to_owned(),
                ));
            }
        };
        let sent = copy.send(self.rows.buffer.as_slice()).await.map(drop);
        self.rows.buffer.clear();
        self.sink = Sink::Open(copy);
        match sent {
            Ok(()) => Ok(()),
            Err(error) => Err(self.abort(error).await),
        }
    }

    /// Aborts the `COPY` if it began, so that nothing of it is stored, and hands `error` back.
    async fn abort(&mut self, error: sqlx::Error) -> sqlx::Error {
        if let Sink::Open(copy) = std::mem::replace(&mut self.sink, Sink::Failed)
            && let Err(abort) = copy.abort(error.to_string()).await
        {
            tracing::warn!(error = %abort, "aborting a COPY failed");
        }
        error
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
        rows.end();
        assert_eq!(rows.buffer.as_slice(), expected.as_slice());
    }

    /// A table for the COPY tests, in a database of its own.
    async fn table() -> (test_support::TestDatabase, sqlx::PgPool) {
        let database = test_support::TestDatabase::create();
        let pool = sqlx::PgPool::connect(&database.url())
            .await
            .expect("connect");
        sqlx::query("CREATE TABLE rows (n bigint NOT NULL, body text NOT NULL)")
            .execute(&pool)
            .await
            .expect("table");
        (database, pool)
    }

    /// Writes rows `numbers` of `(n, body)`; returns the most the rows' buffer held after one.
    async fn write_numbered(
        copy: &mut CopyIn<'_>,
        numbers: std::ops::Range<usize>,
        body: &str,
    ) -> usize {
        let mut largest = 0;
        for n in numbers {
            copy.row(|rows| {
                rows.field(&(n as i64))?;
                rows.field(&body)
            })
            .await
            .expect("row");
            largest = largest.max(copy.rows.buffer.len());
        }
        largest
    }

    /// Rows enough for several chunks arrive whole (as many rows, the numbers' sum, every body
    /// intact), sent as they were written: the rows' buffer never holds much more than a chunk.
    #[tokio::test]
    async fn rows_over_several_chunks_are_stored_whole() {
        let (_database, pool) = table().await;
        let mut conn = pool.acquire().await.expect("connection");
        let body = "dữ liệu ".repeat(100);
        let rows = 3 * CHUNK / body.len() + 7;
        let mut copy = CopyIn::new(
            &mut conn,
            "COPY rows (n, body) FROM STDIN (FORMAT binary)",
            2,
        );
        let largest = write_numbered(&mut copy, 0..rows, &body).await;
        assert!(
            matches!(copy.sink, Sink::Open(_)),
            "chunks were sent before the end"
        );
        copy.finish().await.expect("finish");
        assert!(largest < CHUNK + 2 * body.len(), "{largest}");
        let (count, sum, bodies): (i64, i64, i64) = sqlx::query_as(
            "SELECT count(*), sum(n)::bigint, count(*) FILTER (WHERE body = $1) FROM rows",
        )
        .bind(&body)
        .fetch_one(&pool)
        .await
        .expect("count");
        let rows = rows as i64;
        assert_eq!((count, sum, bodies), (rows, rows * (rows - 1) / 2, rows));
    }

    /// A row that cannot be written after chunks went out aborts the COPY: nothing is stored, and
    /// the connection answers the next statement.
    #[tokio::test]
    async fn a_row_that_cannot_be_written_stores_nothing() {
        let (_database, pool) = table().await;
        let mut conn = pool.acquire().await.expect("connection");
        let body = "x".repeat(1000);
        let mut copy = CopyIn::new(
            &mut conn,
            "COPY rows (n, body) FROM STDIN (FORMAT binary)",
            2,
        );
        write_numbered(&mut copy, 0..(2 * CHUNK / body.len()), &body).await;
        assert!(matches!(copy.sink, Sink::Open(_)), "chunks went out first");
        let failed = copy
            .row(|_| Err(sqlx::Error::Encode("a value that does not encode".into())))
            .await;
        assert!(matches!(failed, Err(sqlx::Error::Encode(_))), "{failed:?}");
        drop(copy);
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM rows")
            .fetch_one(&mut *conn)
            .await
            .expect("the connection answers");
        assert_eq!(stored, 0);
    }

    /// No row, no statement: a COPY into a table that does not exist is never sent.
    #[tokio::test]
    async fn no_rows_send_nothing() {
        let (_database, pool) = table().await;
        let mut conn = pool.acquire().await.expect("connection");
        CopyIn::new(&mut conn, "COPY missing (n) FROM STDIN (FORMAT binary)", 1)
            .finish()
            .await
            .expect("nothing sent");
    }
}
