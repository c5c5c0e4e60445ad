//! What `facegate eval --bundle` leaves in its output folder: charts ([`plots`]) and an HTML
//! page of the worst mistakes with the faces the door saw ([`html`]).

pub mod html;
pub mod plots;
