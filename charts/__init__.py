"""algorail's Helm charts, shipped as package data: `algorail.render.chart_dir(name)` finds them."""
