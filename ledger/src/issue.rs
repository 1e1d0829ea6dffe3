//! Issues (発行回): their parameters and their live supply figures.

use serde::{Deserialize, Serialize};

use crate::yen::{RateBp, Yen};

/// Longest name of an issue, a shop or an operator, in characters.
pub const NAME_CHARS_MAX: usize = 100;

/// An issue's number (a `u32`; in OpenAPI the fields of this type are inlined as integers).
pub type IssueId = u32;

/// Which shops may take a lot of value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// 共通: any shop.
    Common,
    /// 地元専用: local shops only.
    Local,
}

/// What the town fixes when it creates an issue. Times are milliseconds since the Unix
/// epoch; "valid until 2027-01-31" is the end of that day in JST.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssueParams {
    #[cfg_attr(feature = "openapi", schema(inline))]
    pub id: IssueId,
    pub name: String,
    /// What a resident pays for one set (¥10,000).
    pub price: Yen,
    /// Face value per set spendable at any shop.
    pub common_per_set: Yen,
    /// Face value per set spendable at local shops only.
    pub local_per_set: Yen,
    /// Supply cap.
    pub total_sets: u32,
    pub max_sets_per_resident: u32,
    pub workers_may_buy: bool,
    pub sale_start_ms: u64,
    /// The sale is open while `sale_start_ms <= t < sale_end_ms`.
    pub sale_end_ms: u64,
    /// Resident value may be spent while `t <= spend_until_ms`.
    pub spend_until_ms: u64,
    /// Shops may request cash-outs while `t <= cash_out_deadline_ms`.
    pub cash_out_deadline_ms: u64,
    pub cash_out_fee: RateBp,
}

impl IssueParams {
    pub fn face_per_set(&self) -> Option<Yen> {
        self.common_per_set.checked_add(self.local_per_set)
    }

    pub fn per_set(&self, kind: Kind) -> Yen {
        match kind {
            Kind::Common => self.common_per_set,
            Kind::Local => self.local_per_set,
        }
    }

    /// The parameters make sense and every total they imply fits in a `u64`.
    pub fn is_valid(&self) -> bool {
        let Some(face) = self.face_per_set() else {
            return false;
        };
        !self.name.trim().is_empty()
            && self.name.chars().count() <= NAME_CHARS_MAX
            && !self.price.is_zero()
            && !face.is_zero()
            && self.total_sets > 0
            && self.max_sets_per_resident > 0
            && self.max_sets_per_resident <= self.total_sets
            && self.sale_start_ms < self.sale_end_ms
            && self.sale_end_ms <= self.spend_until_ms
            && self.spend_until_ms <= self.cash_out_deadline_ms
            && self.cash_out_fee.0 <= RateBp::MAX.0
            && face.checked_mul(u64::from(self.total_sets)).is_some()
            && self.price.checked_mul(u64::from(self.total_sets)).is_some()
    }
}

/// Where an issue's face value is, in the double-entry sense: every yen issued sits in
/// exactly one of these buckets. `issued` is the credit side of the town's issuance
/// account; the others are debits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Supply {
    pub sets_sold: u32,
    pub cash_received: Yen,
    pub issued_common: Yen,
    pub issued_local: Yen,
    pub residents_common: Yen,
    pub residents_local: Yen,
    pub shops_common: Yen,
    pub shops_local: Yen,
    pub pending_cash_out: Yen,
    pub paid_out: Yen,
    pub fees: Yen,
    pub expired: Yen,
}

impl Supply {
    pub fn issued(&self) -> Yen {
        self.issued_common.plus(self.issued_local)
    }

    pub fn accounted(&self) -> Yen {
        self.residents_common
            .plus(self.residents_local)
            .plus(self.shops_common)
            .plus(self.shops_local)
            .plus(self.pending_cash_out)
            .plus(self.paid_out)
            .plus(self.fees)
            .plus(self.expired)
    }

    /// The town's premium cost: face value issued less cash received.
    pub fn premium_cost(&self) -> Yen {
        self.issued().minus(self.cash_received)
    }

    pub fn invariant_holds(&self) -> bool {
        self.issued() == self.accounted()
    }

    pub(crate) fn residents_mut(&mut self, kind: Kind) -> &mut Yen {
        match kind {
            Kind::Common => &mut self.residents_common,
            Kind::Local => &mut self.residents_local,
        }
    }

    pub(crate) fn shops_mut(&mut self, kind: Kind) -> &mut Yen {
        match kind {
            Kind::Common => &mut self.shops_common,
            Kind::Local => &mut self.shops_local,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueState {
    pub params: IssueParams,
    pub supply: Supply,
    /// Resident value has been moved to "expired".
    pub residents_expired: bool,
    /// Shop value left after the cash-out deadline has been moved to "expired".
    pub shops_expired: bool,
}

impl IssueState {
    pub fn sets_left(&self) -> u32 {
        self.params.total_sets - self.supply.sets_sold
    }
}
