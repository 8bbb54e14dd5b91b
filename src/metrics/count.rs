//! [`GaugeFamily::count`]: the series one account owns in a family.

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
