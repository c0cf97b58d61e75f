"""GGR (greedy group recursion) from "Optimizing LLM Queries in Relational Data Analytics
Workloads" (MLSys'25): order each row's fields and the rows so that consecutive LLM prompts
share long prefixes. Pure Python; the standard library only."""

from collections import Counter


def merge_columns(columns, rows, merge_groups):
    """Fuse each merge group into one cell (members' values concatenated in the order given;
    any member order is valid), placed after the other columns, which keep their order.
    Returns (names, rows)."""
    position = {name: i for i, name in enumerate(columns)}
    grouped = [[position[name] for name in group] for group in merge_groups]
    fused = {i for group in grouped for i in group}
    single = [i for i in range(len(columns)) if i not in fused]
    names = [columns[i] for i in single] + ["+".join(group) for group in merge_groups]
    merged = [[row[i] for i in single] + ["".join(row[i] for i in group) for group in grouped]
              for row in rows]
    return names, merged


# EVOLVE-BLOCK-START
DISTINCT_THRESHOLD = 0.7  # columns with more distinct values than this share of rows go last
ROW_STOP = 4              # recursion depth limit along the "rows without the value" branch
COL_STOP = 2              # recursion depth limit along the "rows with the value" branch
EARLY_STOP = 100000       # stop splitting when the best value's gain is below this
CHUNK_ROWS = 2000         # the table is halved until chunks hold at most this many rows


def column_scores(rows):
    """GGR's score of each column present in `rows` (index, cells of (column, value)):
    (mean value length)**2 * (rows / distinct values - 1), 0 when every value differs."""
    values = {}
    for _, cells in rows:
        for column, value in cells:
            values.setdefault(column, []).append(value)
    scores = {}
    for column, seen in values.items():
        distinct = len(set(seen))
        mean_len = sum(len(v) for v in seen) / len(seen)
        scores[column] = mean_len ** 2 * (len(seen) / distinct - 1)
    return scores


def fixed_order(rows):
    """Order every row's cells by the column scores of `rows`, then sort the rows."""
    scores = column_scores(rows)
    rank = {c: i for i, c in enumerate(sorted(scores, key=lambda c: (-scores[c], c)))}
    ordered = [(index, [v for _, v in sorted(cells, key=lambda cell: rank[cell[0]])])
               for index, cells in rows]
    ordered.sort(key=lambda row: row[1])
    return ordered


def best_value(rows):
    """The cell value with the largest len(v)**2 * (count - 1) in `rows`, and that gain."""
    counts = Counter(v for _, cells in rows for _, v in cells)
    best, gain = None, -1
    for value, count in counts.items():
        weight = len(value) ** 2 * (count - 1)
        if weight > gain:
            best, gain = value, weight
    return best, gain


def group_recursion(rows, row_depth, col_depth):
    """GGR on rows (index, cells of (column, value)): pull the most valuable value to the
    front of the rows holding it, recurse on their other cells and on the other rows.
    Returns (index, values in prompt order) pairs."""
    if not rows:
        return []
    if row_depth >= ROW_STOP or col_depth >= COL_STOP:
        return fixed_order(rows)
    value, gain = best_value(rows)
    if value is None or gain < EARLY_STOP:
        return fixed_order(rows)
    with_value, without, heads = [], [], {}
    for index, cells in rows:
        rest = [cell for cell in cells if cell[1] != value]
        if len(rest) < len(cells):
            heads[index] = [value] * (len(cells) - len(rest))
            with_value.append((index, rest))
        else:
            without.append((index, cells))
    done = [(index, heads[index] + values)
            for index, values in group_recursion(with_value, row_depth, col_depth + 1)]
    return done + group_recursion(without, row_depth + 1, col_depth)


def split_and_reorder(rows):
    """Halve the table until chunks hold at most CHUNK_ROWS rows; GGR on each chunk."""
    if len(rows) <= CHUNK_ROWS:
        return group_recursion(rows, 0, 0)
    middle = len(rows) // 2
    return split_and_reorder(rows[:middle]) + split_and_reorder(rows[middle:])


def members_by_score(columns, rows, merge_groups):
    """Each merge group's members in decreasing order of their column score (ties: in
    column order)."""
    position = {name: i for i, name in enumerate(columns)}
    scores = column_scores([(i, list(enumerate(row))) for i, row in enumerate(rows)])
    return [sorted(group, key=lambda name: (-scores[position[name]], position[name]))
            for group in merge_groups]


def reorder(columns, rows, merge_groups):
    """Return the rows in prompt order, each as its list of cells in prompt order."""
    groups = members_by_score(columns, rows, merge_groups)
    _, table = merge_columns(columns, rows, groups)
    n = len(table)
    everything = [(i, list(enumerate(row))) for i, row in enumerate(table)]
    scores = column_scores(everything)
    by_score = sorted(scores, key=lambda c: (-scores[c], c))
    distinct = {c: len({row[c] for row in table}) for c in by_score}
    kept = [c for c in by_score if distinct[c] <= DISTINCT_THRESHOLD * n]
    last = [c for c in by_score if distinct[c] > DISTINCT_THRESHOLD * n]
    work = [(i, [(c, row[c]) for c in kept]) for i, row in enumerate(table)]
    work.sort(key=lambda row: [v for _, v in row[1]])  # sorted first: similar rows share chunks
    ordered = split_and_reorder(work)
    result = [values + [table[i][c] for c in last] for i, values in ordered]
    result.sort()
    return result
# EVOLVE-BLOCK-END
