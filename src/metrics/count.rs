//! How many series an account owns in a family: what the status page shows per
//! collector. Read once per collection attempt, never on the scrape path.

use super::GaugeFamily;

impl GaugeFamily {
    /// The number of series of `account` in this family.
    pub fn count(&self, account: &str) -> usize {
        let f = &self.family;
        let map = f.lock();
        let symbols = f.lock_symbols();
        let Some(id) = symbols.find(account) else {
            return 0;
        };
        map.keys().filter(|k| k[self.account_at] == id).count()
    }
}

#[cfg(test)]
mod tests {
    use crate::metrics::{GaugeFamily, Registry};

    #[test]
    fn counts_the_series_of_one_account() {
        let registry = Registry::new();
        let fam = GaugeFamily::new(&registry, "t_amount", "Amount.", &["package"]);
        fam.replace("a", [(vec!["p1".into()], 1.0), (vec!["p2".into()], 2.0)]);
        fam.replace("b", [(vec!["p1".into()], 3.0)]);
        assert_eq!(fam.count("a"), 2);
        assert_eq!(fam.count("b"), 1);
        assert_eq!(fam.count("p1"), 0);
        assert_eq!(fam.count("nobody"), 0);
        fam.clear("a");
        assert_eq!(fam.count("a"), 0);
    }
}
