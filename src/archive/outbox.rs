//! The ClickHouse outbox: which records changed since they were last shipped. The transaction
//! that writes a record queues it (`enqueue`), so what is durable locally is durably queued;
//! the shipper reads the queue in order ([`Archive::outbox_read`]) and removes exactly what
//! ClickHouse acknowledged ([`Archive::outbox_ack`]), again in one transaction.
//!
//! Invariants:
//! - A record waits at most once ([`OUTBOX_SEQ`]), and a read gives its latest version.
//! - An acknowledgement removes an entry only if the record did not change since it was read
//!   (its stamp is the same): a change made while a batch was in flight is shipped again.
//! - A record deleted locally (retention, size cap) leaves the outbox with it.

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, WriteTransaction};

use super::{
    Archive, Result, record,
    schema::{OUTBOX, OUTBOX_SEQ, RECORDS},
};
use crate::event::Event;

/// One record waiting to be shipped, as read.
#[derive(Clone, Debug)]
pub struct Waiting {
    /// Its place in the outbox; hand it back to [`Archive::outbox_ack`].
    pub stamp: u64,
    pub seq: u64,
    pub event: Event,
}

/// The outbox's length and its oldest change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxStats {
    pub rows: u64,
    /// The µs of the oldest change not yet shipped; `None` when empty.
    pub oldest_us: Option<u64>,
}

/// Queues `seqs` (records written in `txn`) with stamps from `now_us` on.
pub(super) fn enqueue(txn: &WriteTransaction, seqs: &[u64], now_us: u64) -> Result<()> {
    let mut outbox = txn.open_table(OUTBOX)?;
    let mut by_seq = txn.open_table(OUTBOX_SEQ)?;
    let last = outbox.last()?.map(|(k, _)| k.value());
    let first = last.map_or(now_us, |l| now_us.max(l + 1));
    for (stamp, &seq) in (first..).zip(seqs) {
        if let Some(old) = by_seq.insert(seq, stamp)? {
            outbox.remove(old.value())?;
        }
        outbox.insert(stamp, seq)?;
    }
    Ok(())
}

/// Takes `seqs` (records deleted in `txn`) out of the outbox; returns how many were waiting.
pub(super) fn forget(txn: &WriteTransaction, seqs: &[u64]) -> Result<usize> {
    let mut by_seq = txn.open_table(OUTBOX_SEQ)?;
    if by_seq.is_empty()? {
        return Ok(0);
    }
    let mut outbox = txn.open_table(OUTBOX)?;
    let mut waiting = 0;
    for &seq in seqs {
        if let Some(stamp) = by_seq.remove(seq)? {
            outbox.remove(stamp.value())?;
            waiting += 1;
        }
    }
    Ok(waiting)
}

impl Archive {
    /// Up to `max` waiting records, oldest change first.
    pub fn outbox_read(&self, max: usize) -> Result<Vec<Waiting>> {
        let txn = self.db()?.begin_read()?;
        let outbox = txn.open_table(OUTBOX)?;
        let records = txn.open_table(RECORDS)?;
        let mut out = Vec::new();
        for row in outbox.iter()?.take(max) {
            let (stamp, seq) = row?;
            let (stamp, seq) = (stamp.value(), seq.value());
            // Deleted records leave the outbox in the same transaction; a miss is skipped.
            if let Some(bytes) = records.get(seq)? {
                out.push(Waiting {
                    stamp,
                    seq,
                    event: record::decode(bytes.value())?,
                });
            }
        }
        Ok(out)
    }

    /// ClickHouse has the records read as `shipped` (stamp, seq): removes those that did not
    /// change since, in one transaction.
    pub fn outbox_ack(&self, shipped: &[(u64, u64)]) -> Result<()> {
        let txn = self.db()?.begin_write()?;
        {
            let mut outbox = txn.open_table(OUTBOX)?;
            let mut by_seq = txn.open_table(OUTBOX_SEQ)?;
            for &(stamp, seq) in shipped {
                // Present exactly while the record is unchanged since it was read.
                if outbox.remove(stamp)?.is_some() {
                    by_seq.remove(seq)?;
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    pub fn outbox_stats(&self) -> Result<OutboxStats> {
        let txn = self.db()?.begin_read()?;
        let outbox = txn.open_table(OUTBOX)?;
        Ok(OutboxStats {
            rows: outbox.len()?,
            oldest_us: outbox.first()?.map(|(k, _)| k.value()),
        })
    }

    /// Empties the outbox: shipping is off, and what waited would never leave.
    pub fn outbox_clear(&self) -> Result<()> {
        let txn = self.db()?.begin_write()?;
        txn.delete_table(OUTBOX)?;
        txn.delete_table(OUTBOX_SEQ)?;
        txn.open_table(OUTBOX)?;
        txn.open_table(OUTBOX_SEQ)?;
        txn.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::{Batch, record::tests::sample};

    fn archive(dir: &tempfile::TempDir) -> Archive {
        Archive::open(&dir.path().join("a.redb"))
            .expect("open")
            .with_outbox(true)
            .expect("outbox")
    }

    fn write(a: &Archive, seq: u64, count: u64, replaces: Option<u64>) -> Option<u64> {
        let mut e = sample();
        e.uid = format!("uid-{seq}");
        e.count = count;
        let mut batch = Batch::default();
        let at = batch.put(seq, &e, replaces, 100);
        batch.next_seq = seq + 1;
        a.commit(&batch).expect("commit");
        at
    }

    #[test]
    fn a_record_waits_once_with_its_latest_version() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = archive(&dir);
        let at = write(&a, 0, 1, None);
        write(&a, 1, 1, None);
        write(&a, 0, 5, at);
        let waiting = a.outbox_read(10).expect("read");
        let got: Vec<(u64, u64)> = waiting.iter().map(|w| (w.seq, w.event.count)).collect();
        assert_eq!(
            got,
            vec![(1, 1), (0, 5)],
            "in order of change, latest version"
        );
        assert_eq!(a.outbox_stats().expect("stats").rows, 2);
    }

    #[test]
    fn an_ack_keeps_a_record_that_changed_in_flight() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = archive(&dir);
        let at = write(&a, 0, 1, None);
        write(&a, 1, 1, None);
        let read = a.outbox_read(10).expect("read");
        write(&a, 0, 2, at);
        let shipped: Vec<(u64, u64)> = read.iter().map(|w| (w.stamp, w.seq)).collect();
        a.outbox_ack(&shipped).expect("ack");
        let left = a.outbox_read(10).expect("read");
        assert_eq!(left.len(), 1);
        assert_eq!((left[0].seq, left[0].event.count), (0, 2));
        let shipped: Vec<(u64, u64)> = left.iter().map(|w| (w.stamp, w.seq)).collect();
        a.outbox_ack(&shipped).expect("ack");
        assert_eq!(a.outbox_stats().expect("stats"), OutboxStats::default());
    }

    #[test]
    fn deleted_records_leave_the_outbox() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = archive(&dir);
        write(&a, 0, 1, None);
        write(&a, 1, 1, None);
        let deleted = a.delete_oldest(1).expect("delete");
        assert_eq!((deleted.records, deleted.unshipped), (1, 1));
        assert_eq!(a.outbox_stats().expect("stats").rows, 1);
    }

    #[test]
    fn without_shipping_nothing_waits() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = archive(&dir);
        write(&a, 0, 1, None);
        let a = a.with_outbox(false).expect("outbox");
        write(&a, 1, 1, None);
        assert_eq!(a.outbox_stats().expect("stats").rows, 0, "cleared");
    }
}
