//! The shop's static files: its style sheet, its icon, and a picture for
//! each product, drawn as SVG from the picture's name (so the sample needs
//! no image files): a colour from the name, its initial, and the name.

/// The content type and body of `/static/PATH`, if there is such a file.
fn find(path: &str) -> Option<(&'static str, String)> {
    match path {
        "styles.css" => Some(("text/css; charset=utf-8", STYLES.to_string())),
        "favicon.svg" => Some(("image/svg+xml", picture("boutique"))),
        _ => {
            let name = path.strip_prefix("img/products/")?.strip_suffix(".svg")?;
            let known =
                name.len() <= 40 && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
            known.then(|| ("image/svg+xml", picture(name)))
        }
    }
}

/// The status, headers and body of the answer to `/static/PATH`.
pub(crate) fn answer(path: &str) -> (u16, [(&'static str, &'static str); 2], Vec<u8>) {
    match find(path) {
        Some((content_type, body)) => (
            200,
            [
                ("content-type", content_type),
                ("cache-control", "max-age=3600"),
            ],
            body.into_bytes(),
        ),
        None => (
            404,
            [
                ("content-type", "text/plain"),
                ("cache-control", "no-store"),
            ],
            b"no such file\n".to_vec(),
        ),
    }
}

/// A square picture: a colour from the name's hash, its initial, the name.
fn picture(name: &str) -> String {
    let initial = name.chars().next().unwrap_or('?').to_ascii_uppercase();
    let hash = name.bytes().fold(2_166_136_261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    });
    let hue = hash % 360;
    let label = name.replace('-', " ");
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 300 300\" width=\"300\" height=\"300\">\
<rect width=\"300\" height=\"300\" rx=\"24\" fill=\"hsl({hue},55%,88%)\"/>\
<circle cx=\"150\" cy=\"130\" r=\"80\" fill=\"hsl({hue},60%,70%)\"/>\
<text x=\"150\" y=\"162\" font-size=\"96\" font-family=\"sans-serif\" font-weight=\"700\" \
text-anchor=\"middle\" fill=\"#fff\">{initial}</text>\
<text x=\"150\" y=\"262\" font-size=\"26\" font-family=\"sans-serif\" text-anchor=\"middle\" \
fill=\"hsl({hue},40%,25%)\">{label}</text></svg>"
    )
}

const STYLES: &str = "\
*{box-sizing:border-box}\
body{margin:0;font-family:system-ui,sans-serif;color:#222;background:#f6f6f8}\
header{display:flex;align-items:center;gap:16px;padding:12px 24px;background:#111;color:#fff}\
header a{color:#fff;text-decoration:none}\
.logo{font-weight:700;font-size:20px}.by{opacity:.6;font-size:13px;flex:1}\
.currency select{margin-left:6px}\
.cart-link span{display:inline-block;min-width:22px;padding:2px 6px;border-radius:11px;background:#e64a19;text-align:center}\
main{max-width:1040px;margin:0 auto;padding:24px}\
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:16px}\
.card{display:flex;flex-direction:column;background:#fff;border-radius:12px;padding:12px;color:inherit;text-decoration:none;box-shadow:0 1px 3px #0002}\
.card img{width:100%;border-radius:8px}.card .name{margin-top:8px;font-weight:600}.card .price{color:#555}\
.product{display:flex;gap:32px;background:#fff;border-radius:12px;padding:24px}.product img{width:300px;border-radius:12px}\
.price{font-size:22px;font-weight:600}\
button,.button{display:inline-block;padding:8px 18px;border:0;border-radius:18px;background:#111;color:#fff;font-size:15px;text-decoration:none;cursor:pointer}\
button.secondary{background:#888}\
table.cart{width:100%;border-collapse:collapse;background:#fff;margin-bottom:12px}\
table.cart td,table.cart th{padding:8px 12px;border-bottom:1px solid #eee;text-align:left}\
.num{text-align:right!important}.total td{font-weight:700}\
.checkout{display:grid;grid-template-columns:1fr 1fr;gap:8px 16px;background:#fff;border-radius:12px;padding:16px;margin-top:16px}\
.checkout h2,.checkout button{grid-column:1/-1}.checkout label{display:flex;flex-direction:column;font-size:13px}\
.ad{margin-top:24px;padding:12px;border:1px dashed #999;border-radius:8px;background:#fff}\
.failure h1{color:#b71c1c}.message{font-size:18px}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:6px 16px}dt{font-weight:600}\
.recommended{margin-top:32px}.card.small{font-size:14px}\
footer{padding:24px;text-align:center;color:#888;font-size:13px}";
