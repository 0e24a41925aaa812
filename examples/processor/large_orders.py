# A processor statement: orders of 100 or more that are new since the last run.
# DATA_CHECKPOINT is the order_id of the last row the previous run returned (None at first);
# the component's checkpoint column is order_id, so the last row's id is stored with the rows.
last = DATA_CHECKPOINT or 0
large = [o for o in INPUT_DATA if o["order_id"] > last and o["amount"] >= 100]
large.sort(key=lambda o: o["order_id"])
log.info(f"{len(large)} large orders after order {last}")
return [
    {"order_id": o["order_id"], "customer": o["customer"], "amount": o["amount"]} for o in large
]
