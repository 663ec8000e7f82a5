//! The bank of the Chandy-Lamport lecture example (Dr. TLA+ series, "Chandy-Lamport
//! snapshot"): one account per node, money moves as point-to-point messages, so
//! at any instant part of the total is *in flight*. A snapshot is only right if
//! its recorded balances plus its recorded channel money add up to the total.

use serde::{Deserialize, Serialize};

/// A transfer in flight: the amount leaving the sender's account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Transfer(pub u64);

/// A local event in an account's life, used to replay histories.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AccountEvent {
    Debit(u64),
    Credit(u64),
}

/// One node's account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Account {
    pub balance: u64,
}

impl Account {
    /// Debits `amount` if covered and returns the transfer to send.
    pub fn send(&mut self, amount: u64) -> Option<Transfer> {
        if amount == 0 || amount > self.balance {
            return None;
        }
        self.balance -= amount;
        Some(Transfer(amount))
    }

    /// Credits an arrived transfer.
    pub fn receive(&mut self, t: Transfer) {
        self.balance += t.0;
    }

    /// Applies one recorded event; replaying an account's log reproduces its balance.
    pub fn apply(&mut self, e: AccountEvent) {
        match e {
            AccountEvent::Debit(a) => self.balance -= a,
            AccountEvent::Credit(a) => self.balance += a,
        }
    }

    /// The balance after replaying `events` from `self`.
    pub fn replay<'a>(mut self, events: impl IntoIterator<Item = &'a AccountEvent>) -> Account {
        for e in events {
            self.apply(*e);
        }
        self
    }
}
