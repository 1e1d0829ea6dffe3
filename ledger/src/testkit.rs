//! What machi's tests build again and again, built once: with the feature `testkit`,
//! which only dev-dependencies turn on.

use crate::{IssueId, IssueParams, RateBp, Yen};

/// One day in milliseconds.
pub const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// The issue machi's tests sell: ¥10,000 a set for ¥12,500 of face value (¥6,250
/// common, ¥6,250 local), residents only; on sale for a day from `sale_start_ms`,
/// spendable for 30 days and cashed out within 60 from then, at a 1% fee. A test that
/// needs another value says so with `IssueParams { field, ..standard_issue(..) }`.
pub fn standard_issue(
    id: IssueId,
    total_sets: u32,
    max_sets_per_resident: u32,
    sale_start_ms: u64,
) -> IssueParams {
    IssueParams {
        id,
        name: format!("第{id}回 プレミアム商品券"),
        price: Yen(10_000),
        common_per_set: Yen(6_250),
        local_per_set: Yen(6_250),
        total_sets,
        max_sets_per_resident,
        workers_may_buy: false,
        sale_start_ms,
        sale_end_ms: sale_start_ms + DAY_MS,
        spend_until_ms: sale_start_ms + 30 * DAY_MS,
        cash_out_deadline_ms: sale_start_ms + 60 * DAY_MS,
        cash_out_fee: RateBp(100),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_issue_is_coherent_and_sells_at_a_premium() {
        let issue = standard_issue(3, 100, 2, 1_799_074_800_000);
        assert!(issue.is_valid());
        assert_eq!(issue.face_per_set(), Some(Yen(12_500)));
        assert_eq!(issue.name, "第3回 プレミアム商品券");
    }
}
