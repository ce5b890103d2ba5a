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
    Archive, Result, read_record,
    record::View,
    schema::{OCCURRENCES, OUTBOX, OUTBOX_SEQ, RECORDS},
};

/// One record waiting to be shipped, as read: hand `(stamp, seq)` back to
/// [`Archive::outbox_ack`] once ClickHouse has it.
pub type Read = (u64, u64);

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
    /// Up to `max` waiting records, oldest change first: each is shown to `each` as it is
    /// stored (its latest version), and the list of what was read is returned.
    pub fn outbox_read(&self, max: usize, mut each: impl FnMut(&View<'_>)) -> Result<Vec<Read>> {
        let txn = self.db()?.begin_read()?;
        let outbox = txn.open_table(OUTBOX)?;
        let records = txn.open_table(RECORDS)?;
        let occurrences = txn.open_table(OCCURRENCES)?;
        let mut read = Vec::new();
        for row in outbox.iter()?.take(max) {
            let (stamp, seq) = row?;
            let (stamp, seq) = (stamp.value(), seq.value());
            // Deleted records leave the outbox in the same transaction; a miss is skipped.
            if read_record(&records, &occurrences, seq, |v| each(&v))?.is_some() {
                read.push((stamp, seq));
            }
        }
        Ok(read)
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
        let mut got = Vec::new();
        a.outbox_read(10, |r| got.push((r.uid.to_owned(), r.count)))
            .expect("read");
        let got: Vec<(&str, u64)> = got.iter().map(|(u, c)| (u.as_str(), *c)).collect();
        assert_eq!(
            got,
            vec![("uid-1", 1), ("uid-0", 5)],
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
        let read = a.outbox_read(10, |_| {}).expect("read");
        write(&a, 0, 2, at);
        a.outbox_ack(&read).expect("ack");
        let mut counts = Vec::new();
        let left = a.outbox_read(10, |r| counts.push(r.count)).expect("read");
        assert_eq!((left.len(), left[0].1, counts), (1, 0, vec![2]));
        a.outbox_ack(&left).expect("ack");
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
