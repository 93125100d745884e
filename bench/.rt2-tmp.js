const { Client } = require('pg');
(async () => {
  const c = new Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/sy_scratch' });
  await c.connect();
  const u = (await c.query(`INSERT INTO users(username) VALUES ('u'||random()) RETURNING id`)).rows[0].id;
  await c.query(`INSERT INTO user_credits(user_id,balance) VALUES ($1, 1000000000000)`, [u]);
  const sql = `SELECT * FROM credits_apply_batch($1::text[], $2::uuid[], $3::uuid[], $4::bigint[], $5::text[], $6::text[])`;
  const N = Number(process.argv[2] || 5);
  let open = [];
  const times = [];
  for (let r = 0; r < 600; r++) {
    const kinds = [], users = [], refs = [], amounts = [], reqs = [], descs = [];
    for (const id of open) { kinds.push('settle'); users.push(u); refs.push(id); amounts.push(1); reqs.push('r'); descs.push('s'); }
    for (let i = 0; i < N; i++) { kinds.push('debit'); users.push(u); refs.push(null); amounts.push(2); reqs.push('r' + r + '-' + i); descs.push('d'); }
    const s = process.hrtime.bigint();
    const res = await c.query(sql, [kinds, users, refs, amounts, reqs, descs]);
    times.push(Number(process.hrtime.bigint() - s) / 1e6);
    open = res.rows.filter((x) => x.o_event_type === 'debit').map((x) => x.o_id);
  }
  times.sort((a, b) => a - b);
  console.log(`batch ${2 * N} ops: p50 ${times[300].toFixed(3)} p90 ${times[540].toFixed(3)} mean ${(times.reduce((a, b) => a + b) / times.length).toFixed(3)}`);
  await c.end();
})();
