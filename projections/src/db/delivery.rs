//! The delivery side of the read models: how far each channel (a webhook endpoint) has
//! read the notice outbox, and the notices a channel gave up on (dead letters) until they
//! are replayed.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use stockade_domain::Timestamp;

use super::{DeadLetter, ReadModels, checkpoint, now_millis, sql, to_i64, to_u64};
use crate::ProjectionError;
use crate::model::Notice;

impl ReadModels {
    /// The channel's cursor; a channel seen for the first time starts at the current end
    /// of the outbox (it gets what happens from now on, not the history).
    pub async fn cursor_or_start(&self, channel: &str) -> Result<u64, ProjectionError> {
        let channel = channel.to_owned();
        self.write(move |tx| {
            let at = tx
                .query_row(
                    "SELECT seq FROM delivery_cursors WHERE channel = ?1",
                    [&channel],
                    |r| r.get::<_, i64>(0),
                )
                .optional()
                .map_err(sql)?;
            match at {
                Some(seq) => Ok(to_u64(seq)),
                None => {
                    let end = checkpoint(tx)?.events;
                    set_cursor(tx, &channel, end)?;
                    Ok(end)
                }
            }
        })
        .await
    }

    pub async fn set_cursor(&self, channel: &str, seq: u64) -> Result<(), ProjectionError> {
        let channel = channel.to_owned();
        self.write(move |tx| set_cursor(tx, &channel, seq)).await
    }

    /// Moves `notice` to the dead-letter queue and the channel's cursor past it, together.
    pub async fn dead_letter(
        &self,
        channel: &str,
        notice: &Notice,
        error: &str,
        attempts: u32,
    ) -> Result<(), ProjectionError> {
        let (channel, error, seq) = (channel.to_owned(), error.to_owned(), notice.seq);
        let body = serde_json::to_string(notice)
            .map_err(|e| ProjectionError::ReadModel(format!("encode notice: {e}")))?;
        let depth = self
            .write(move |tx| {
                tx.execute(
                    "INSERT INTO dead_letters (channel, seq, body, error, attempts, failed_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![channel, to_i64(seq), body, error, attempts, now_millis()],
                )
                .map_err(sql)?;
                set_cursor(tx, &channel, seq)?;
                dead_letter_depth(tx)
            })
            .await?;
        metrics::gauge!("stockade_dlq_depth").set(depth as f64);
        Ok(())
    }

    /// The dead letters of `channel` (or of every channel), oldest first.
    pub async fn dead_letters(
        &self,
        channel: Option<&str>,
    ) -> Result<Vec<DeadLetter>, ProjectionError> {
        let channel = channel.map(str::to_owned);
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT id, channel, body, error, attempts, failed_at FROM dead_letters
                     WHERE ?1 IS NULL OR channel = ?1 ORDER BY id",
                )
                .map_err(sql)?;
            let rows = stmt
                .query_map([channel], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, i64>(5)?,
                    ))
                })
                .map_err(sql)?;
            rows.map(|row| {
                let (id, channel, body, error, attempts, failed_at) = row.map_err(sql)?;
                let notice = serde_json::from_str(&body).map_err(|e| {
                    ProjectionError::ReadModel(format!("dead letter {id} unreadable: {e}"))
                })?;
                Ok(DeadLetter {
                    id: to_u64(id),
                    channel,
                    notice,
                    error,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    failed_at: Timestamp::from_millis(to_u64(failed_at)),
                })
            })
            .collect()
        })
        .await
    }

    /// How many dead letters there are, over all channels.
    pub async fn dead_letter_count(&self) -> Result<u64, ProjectionError> {
        self.read(dead_letter_depth).await
    }

    /// Removes a dead letter that has now been delivered.
    pub async fn forget_dead_letter(&self, id: u64) -> Result<(), ProjectionError> {
        let depth = self
            .write(move |tx| {
                tx.execute("DELETE FROM dead_letters WHERE id = ?1", [to_i64(id)])
                    .map_err(sql)?;
                dead_letter_depth(tx)
            })
            .await?;
        metrics::gauge!("stockade_dlq_depth").set(depth as f64);
        Ok(())
    }

    /// Records another failed attempt at a dead letter.
    pub async fn retry_failed(&self, id: u64, error: &str) -> Result<(), ProjectionError> {
        let error = error.to_owned();
        self.write(move |tx| {
            tx.execute(
                "UPDATE dead_letters SET error = ?2, attempts = attempts + 1, failed_at = ?3
                 WHERE id = ?1",
                params![to_i64(id), error, now_millis()],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }
}

fn set_cursor(tx: &Transaction<'_>, channel: &str, seq: u64) -> Result<(), ProjectionError> {
    tx.execute(
        "INSERT INTO delivery_cursors (channel, seq) VALUES (?1, ?2)
         ON CONFLICT (channel) DO UPDATE SET seq = excluded.seq",
        params![channel, to_i64(seq)],
    )
    .map_err(sql)?;
    Ok(())
}

fn dead_letter_depth(c: &Connection) -> Result<u64, ProjectionError> {
    c.query_row("SELECT COUNT(*) FROM dead_letters", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(to_u64)
    .map_err(sql)
}
