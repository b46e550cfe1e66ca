//! The boutique's product catalog: the nine products of Online Boutique,
//! embedded, listed, looked up by id and searched by name or description.

boutique_shared::bindings!("boutique:shop/productcatalog-component");

use boutique::shop::types::{Money, Product};
use exports::boutique::shop::product_catalog::{CatalogError, Guest};

/// id, name, description, picture, price in USD (units, nanos), categories.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    (i64, i32),
    &'static [&'static str],
);

const PRODUCTS: &[Row] = &[
    (
        "OLJCESPC7Z",
        "Sunglasses",
        "Add a modern touch to your outfits with these sleek aviator sunglasses.",
        "sunglasses",
        (19, 990_000_000),
        &["accessories"],
    ),
    (
        "66VCHSJNUP",
        "Tank Top",
        "Perfectly cropped cotton tank, with a scooped neckline.",
        "tank-top",
        (18, 990_000_000),
        &["clothing", "tops"],
    ),
    (
        "1YMWWN1N4O",
        "Watch",
        "This gold-tone stainless steel watch will work with most of your outfits.",
        "watch",
        (109, 990_000_000),
        &["accessories"],
    ),
    (
        "L9ECAV7KIM",
        "Loafers",
        "A neat addition to your summer wardrobe.",
        "loafers",
        (89, 990_000_000),
        &["footwear"],
    ),
    (
        "2ZYFJ3GM2N",
        "Hairdryer",
        "This lightweight hairdryer has 3 heat and speed settings. It's perfect for travel.",
        "hairdryer",
        (24, 990_000_000),
        &["hair", "beauty"],
    ),
    (
        "0PUK6V6EV0",
        "Candle Holder",
        "This small but intricate candle holder is an excellent gift.",
        "candle-holder",
        (18, 990_000_000),
        &["decor", "home"],
    ),
    (
        "LS4PSXUNUM",
        "Salt & Pepper Shakers",
        "Add some flavor to your kitchen.",
        "salt-and-pepper-shakers",
        (18, 490_000_000),
        &["kitchen"],
    ),
    (
        "9SIQT8TOJO",
        "Bamboo Glass Jar",
        "This bamboo glass jar can hold 57 oz (1.7 l) and is perfect for any kitchen.",
        "bamboo-glass-jar",
        (5, 490_000_000),
        &["kitchen"],
    ),
    (
        "6E92ZMYYFZ",
        "Mug",
        "A simple mug with a mustard interior.",
        "mug",
        (8, 990_000_000),
        &["kitchen"],
    ),
];

fn product(row: &Row) -> Product {
    let (id, name, description, picture, (units, nanos), categories) = *row;
    Product {
        id: id.into(),
        name: name.into(),
        description: description.into(),
        picture: format!("/static/img/products/{picture}.svg"),
        price_usd: Money {
            currency_code: "USD".into(),
            units,
            nanos,
        },
        categories: categories.iter().map(|c| c.to_string()).collect(),
    }
}

struct Catalog;

impl Guest for Catalog {
    fn list_products() -> Vec<Product> {
        PRODUCTS.iter().map(product).collect()
    }

    fn get_product(id: String) -> Result<Product, CatalogError> {
        PRODUCTS
            .iter()
            .find(|row| row.0 == id)
            .map(product)
            .ok_or(CatalogError::NotFound(id))
    }

    fn search_products(query: String) -> Vec<Product> {
        let query = query.to_lowercase();
        PRODUCTS
            .iter()
            .filter(|row| {
                row.1.to_lowercase().contains(&query) || row.2.to_lowercase().contains(&query)
            })
            .map(product)
            .collect()
    }
}

export!(Catalog);
