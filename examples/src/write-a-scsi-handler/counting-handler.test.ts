import { expect, it } from 'vitest';
import { runOnSimulatedKernel } from './main.ts';

it('the write-a-scsi-handler example serves, refuses block 0, answers its vendor command', async () => {
  const lines = await runOnSimulatedKernel();
  console.log(lines.join('\n'));
  expect(lines).toEqual([
    'WRITE(10) LBA 5: GOOD',
    'WRITE(10) LBA 0: CHECK CONDITION key 7 asc/ascq 27/00',
    'READ(10) LBA 5: GOOD, the written bytes',
    'READ COUNTERS: GOOD reads 1 writes 1 refused 1',
    'counters in the process: {"reads":1,"writes":1,"refused":1}',
  ]);
});
