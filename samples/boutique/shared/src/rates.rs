//! Exchange rates against the euro, as the currency service keeps them:
//! parsed once from decimal text into whole hundred-thousandths, with
//! overrides from config written as `USD=1.25,JPY=130.5`.
//!
//! ```
//! use boutique_shared::rates::Rates;
//! let rates = Rates::parse(&[("EUR", "1.0"), ("USD", "1.1305")], "USD=1.25").unwrap();
//! assert_eq!(rates.of("USD"), Some(125_000));
//! assert_eq!(rates.codes().collect::<Vec<_>>(), ["EUR", "USD"]);
//! ```

/// Rates are kept in hundred-thousandths of a unit per euro.
pub const SCALE: i128 = 100_000;

/// Units of each currency per euro, in the order first given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rates(Vec<(String, i128)>);

impl Rates {
    /// The `embedded` table with `overrides` (`CODE=RATE,...`; empty for
    /// none) applied; an override may add a currency. A rate that is not a
    /// positive decimal with at most five places is an error that names it.
    pub fn parse(embedded: &[(&str, &str)], overrides: &str) -> Result<Rates, String> {
        let mut rates = Vec::with_capacity(embedded.len());
        for (code, text) in embedded {
            let rate = parse_rate(text)
                .ok_or_else(|| format!("the embedded rate of {code}, '{text}', is not a rate"))?;
            rates.push((code.to_string(), rate));
        }
        for pair in overrides.split(',').filter(|p| !p.trim().is_empty()) {
            let (code, text) = pair.split_once('=').unwrap_or((pair, ""));
            let code = code.trim();
            let rate = parse_rate(text).ok_or_else(|| {
                format!(
                    "config key 'rates' gives {code} the rate '{}', which is not a positive \
                     decimal with at most five places",
                    text.trim()
                )
            })?;
            match rates.iter_mut().find(|(c, _)| c == code) {
                Some(known) => known.1 = rate,
                None => rates.push((code.to_string(), rate)),
            }
        }
        Ok(Rates(rates))
    }

    /// The rate of `code`, in hundred-thousandths per euro.
    pub fn of(&self, code: &str) -> Option<i128> {
        self.0
            .iter()
            .find(|(c, _)| c == code)
            .map(|(_, rate)| *rate)
    }

    /// Every currency's code.
    pub fn codes(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(code, _)| code.as_str())
    }
}

/// `1.1305` in hundred-thousandths: 113050; positive, at most five places.
fn parse_rate(text: &str) -> Option<i128> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || fraction.len() > 5 || !digits(whole) || !digits(fraction) {
        return None;
    }
    let rate = whole
        .parse::<i128>()
        .ok()?
        .checked_mul(SCALE)?
        .checked_add(format!("{fraction:0<5}").parse::<i128>().ok()?)?;
    (rate > 0).then_some(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_to_hundred_thousandths() {
        assert_eq!(parse_rate("1.1305"), Some(113_050));
        assert_eq!(parse_rate(" 0.85970 "), Some(85_970));
        assert_eq!(parse_rate("15999.40"), Some(1_599_940_000));
        assert_eq!(parse_rate("2"), Some(200_000));
        assert_eq!(parse_rate("2."), Some(200_000));
    }

    #[test]
    fn what_is_not_a_rate_is_refused() {
        for bad in [
            "", ".5", "0", "0.00000", "-1", "1.123456", "1e3", "1,5", "x",
        ] {
            assert_eq!(parse_rate(bad), None, "{bad:?}");
        }
        // Too large to scale, rather than wrapping around.
        assert_eq!(parse_rate(&"9".repeat(38)), None);
    }

    #[test]
    fn overrides_replace_or_add_and_a_bad_one_names_itself() {
        let embedded = [("EUR", "1.0"), ("USD", "1.1305")];
        let rates = Rates::parse(&embedded, " USD = 1.25 , XTS=2").unwrap();
        assert_eq!(rates.of("USD"), Some(125_000));
        assert_eq!(rates.of("XTS"), Some(200_000));
        assert_eq!(rates.of("GBP"), None);
        assert_eq!(
            Rates::parse(&embedded, "USD=cheap").unwrap_err(),
            "config key 'rates' gives USD the rate 'cheap', which is not a positive decimal \
             with at most five places"
        );
    }
}
