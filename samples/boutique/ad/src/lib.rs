//! The boutique's ads: a few per category, as in Online Boutique's ad
//! service. Keywords pick ads of those categories; none (or no match) gives
//! one ad of each category, for the frontend to choose from.

boutique_shared::bindings!("boutique:shop/ad-component");

use boutique::shop::types::Ad;
use exports::boutique::shop::ads::Guest;

/// category, product the ad links to, text.
const ADS: &[(&str, &str, &str)] = &[
    ("clothing", "66VCHSJNUP", "Tank top for sale. 20% off."),
    (
        "accessories",
        "1YMWWN1N4O",
        "Watch for sale. Buy one, get second kit for free",
    ),
    (
        "footwear",
        "L9ECAV7KIM",
        "Loafers for sale. Buy one, get second one for free",
    ),
    ("hair", "2ZYFJ3GM2N", "Hairdryer for sale. 50% off."),
    ("decor", "0PUK6V6EV0", "Candle holder for sale. 30% off."),
    (
        "kitchen",
        "9SIQT8TOJO",
        "Bamboo glass jar for sale. 10% off.",
    ),
    (
        "kitchen",
        "6E92ZMYYFZ",
        "Mug for sale. Buy two, get third one for free",
    ),
];

fn ad(row: &(&str, &str, &str)) -> Ad {
    Ad {
        redirect_url: format!("/product/{}", row.1),
        text: row.2.into(),
    }
}

struct Ads;

impl Guest for Ads {
    fn get_ads(keywords: Vec<String>) -> Vec<Ad> {
        let chosen: Vec<Ad> = ADS
            .iter()
            .filter(|row| keywords.iter().any(|k| k == row.0))
            .map(ad)
            .collect();
        if !chosen.is_empty() {
            return chosen;
        }
        let mut seen: Vec<&str> = Vec::new();
        ADS.iter()
            .filter(|row| {
                let first = !seen.contains(&row.0);
                seen.push(row.0);
                first
            })
            .map(ad)
            .collect()
    }
}

export!(Ads);
